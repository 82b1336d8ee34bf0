"""Websocket routes for live chat: the visitor's widget and the staff's agent panel."""

from __future__ import annotations

from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import URLPattern, path

from chatbot import consumers, staff_consumer

websocket_urlpatterns: list[URLPattern] = [
    # Visitors come from the customers' own websites: the consumer checks the site's allowed origins.
    # The conversation token comes in the first frame, never in the URL (URLs land in logs).
    path("ws/chat/visitor/", consumers.VisitorConsumer.as_asgi()),
    # Staff sockets carry the session cookie: only pages of this server (ALLOWED_HOSTS) may open one,
    # so another website cannot ride a logged-in salesperson's cookie into the live chat.
    path("ws/chat/agent/<int:lead_id>/", AllowedHostsOriginValidator(consumers.AgentConsumer.as_asgi())),
    # Every signed-in staff page's one socket: alerts (a visitor is waiting) and live-chat changes.
    path("ws/staff/", AllowedHostsOriginValidator(staff_consumer.StaffConsumer.as_asgi())),
]
