"""The inbound email endpoint, mounted at /api/v1/email/."""

from __future__ import annotations

from django.urls import URLPattern, path

from outreach import api

urlpatterns: list[URLPattern] = [path("inbound", api.InboundEmailView.as_view(), name="email-inbound")]
