"""Websocket consumers: push-only channels for new messages and status, one per widget / agent panel.

Sending goes over the HTTP API (visitor) or HTMX forms (agent), where validation, rate limits and
storage live; the sockets only deliver. A client that reconnects asks the HTTP side for messages
after the last id it has, so nothing is lost during a drop.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from chatbot import realtime, services
from chatbot.models import Conversation
from leadcrm.models import Lead
from leadcrm.permissions import can_see_lead


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


@database_sync_to_async
def _visitor_conversation(token: str, origin: str) -> Conversation | None:
    if not isinstance(token, str) or not token or len(token) > 64:
        return None
    conversation = Conversation.objects.select_related("site").filter(token=token).first()
    if conversation is None or not hmac.compare_digest(conversation.token.encode(), token.encode()):
        return None
    if not conversation.site.allows_origin(origin):
        return None
    return conversation


@database_sync_to_async
def _heartbeat(conversation_id: int) -> None:
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is not None:
        services.heartbeat(conversation=conversation, now=timezone.now())


AUTH_TIMEOUT_S = 10.0


class VisitorConsumer(AsyncJsonWebsocketConsumer):
    """The widget's socket: its first frame must be {"type": "auth", "token": …} with the
    conversation's token (never in the URL, which lands in logs), from an allowed Origin; any
    other first frame, a wrong token or silence for AUTH_TIMEOUT_S closes it (code 4403)."""

    group: str = ""
    conversation_id: int | None = None
    _timeout: asyncio.TimerHandle | None = None

    async def connect(self) -> None:
        await self.accept()
        loop = asyncio.get_running_loop()
        self._timeout = loop.call_later(AUTH_TIMEOUT_S, lambda: loop.create_task(self._expire()))

    async def _expire(self) -> None:
        if self.conversation_id is None:
            await self.close(code=4403)

    async def disconnect(self, code: int) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _authenticate(self, content: Any) -> None:
        token = content.get("token") if isinstance(content, dict) and content.get("type") == "auth" else None
        conversation = await _visitor_conversation(token, _header(self.scope, b"origin"))
        if conversation is None:
            await self.close(code=4403)
            return
        if self._timeout is not None:
            self._timeout.cancel()
        self.conversation_id = conversation.pk
        self.group = realtime.conversation_group(conversation.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send_json({"type": "ready"})

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return json.loads(text_data)
        except ValueError:
            return None  # a malformed frame is ignored (before auth: closes, like a wrong token)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if self.conversation_id is None:
            await self._authenticate(content)
            return
        if isinstance(content, dict) and content.get("type") == "ping":
            await _heartbeat(self.conversation_id)  # authenticated: set above
            await self.send_json({"type": "pong"})

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "message", "message": event["message"]})

    async def chat_messages(self, event: dict[str, Any]) -> None:
        for message in event["messages"]:  # several messages in one event: one frame each, in order
            await self.send_json({"type": "message", "message": message})

    async def chat_status(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "status", "status": event["status"], "agent": event.get("agent", "")})


@database_sync_to_async
def _may_watch(user: Any, lead_id: int) -> bool:
    lead = Lead.objects.filter(pk=lead_id).first()
    return lead is not None and user.is_authenticated and can_see_lead(user, lead)


class AgentConsumer(AsyncJsonWebsocketConsumer):
    """The agent panel's socket: logged-in staff who may see the lead (the role rule), else refused."""

    group: str = ""

    async def connect(self) -> None:
        lead_id = self.scope["url_route"]["kwargs"]["lead_id"]
        user = self.scope.get("user")
        if user is None or not await _may_watch(user, lead_id):
            await self.close(code=4403)
            return
        self.group = realtime.lead_group(lead_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {"type": "message", "conversation": event["conversation"], "message": event["message"]}
        )

    async def chat_messages(self, event: dict[str, Any]) -> None:
        for message in event["messages"]:  # several messages in one event: one frame each, in order
            await self.send_json(
                {"type": "message", "conversation": event["conversation"], "message": message}
            )

    async def chat_status(self, event: dict[str, Any]) -> None:
        await self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "status"})

    async def chat_page(self, event: dict[str, Any]) -> None:
        await self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "page"})
