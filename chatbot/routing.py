"""Websocket routes for live chat: the visitor's widget and the staff's agent panel."""

from __future__ import annotations

from django.urls import URLPattern, path

from chatbot import consumers

websocket_urlpatterns: list[URLPattern] = [
    path("ws/chat/visitor/<str:token>/", consumers.VisitorConsumer.as_asgi()),
    path("ws/chat/agent/<int:lead_id>/", consumers.AgentConsumer.as_asgi()),
]
