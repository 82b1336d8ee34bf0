"""The widget's "What do you know about me?" endpoints, mounted at /api/v1/chat/sites/<key>/me/."""

from __future__ import annotations

from django.urls import URLPattern, path

from privacy import api

urlpatterns: list[URLPattern] = [
    path("data", api.MyDataView.as_view(), name="privacy-me-data"),
    path("erasure", api.MyErasureView.as_view(), name="privacy-me-erasure"),
]
