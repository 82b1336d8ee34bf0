"""URLs of the outreacher pages (queue, lead context, reports)."""

from __future__ import annotations

from django.urls import URLPattern, path  # noqa: F401

app_name = "leadcrm"
urlpatterns: list[URLPattern] = []
