"""Websocket routes for live chat (filled by the chatbot app's consumers)."""

from __future__ import annotations

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
