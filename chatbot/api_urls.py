"""Public chat-widget API endpoints (under /api/v1/chat/)."""

from __future__ import annotations

from django.urls import URLPattern, path  # noqa: F401

urlpatterns: list[URLPattern] = []
