"""The audit page, mounted at /audit/."""

from __future__ import annotations

from django.urls import URLPattern, path

from audit import views

app_name = "audit"
urlpatterns: list[URLPattern] = [path("", views.trail, name="trail")]
