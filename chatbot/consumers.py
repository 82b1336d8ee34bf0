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
from django.core.cache import cache
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
TYPING_EVERY_S = 2  # at most one "typing" broadcast per conversation and side per this many seconds


async def _typing_allowed(conversation_id: int, side: str) -> bool:
    """True at most once per TYPING_EVERY_S for this conversation and side, across all servers."""
    try:
        return bool(await cache.aadd(f"chat.typing.{side}.{conversation_id}", 1, timeout=TYPING_EVERY_S))
    except Exception:
        return False  # no cache: no typing indicator, nothing else breaks


@database_sync_to_async
def _conversation_lead(conversation_id: int) -> int | None:
    return Conversation.objects.filter(pk=conversation_id).values_list("lead_id", flat=True).first()


@database_sync_to_async
def _lead_conversation(conversation_id: Any, lead_id: int) -> int | None:
    """The conversation's id if it is one of this lead's chats (the agent socket's lead)."""
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        return None
    return (
        Conversation.objects.filter(pk=conversation_id, lead_id=lead_id).values_list("pk", flat=True).first()
    )


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
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ping":
            await _heartbeat(self.conversation_id)  # authenticated: set above
            await self.send_json({"type": "pong"})
        elif kind == "typing":
            await self._typing(self.conversation_id)
        # Anything else is ignored: messages go over the HTTP API, where validation and limits live.

    async def _typing(self, conversation_id: int) -> None:
        """The visitor is typing: "typing…" in the lead's agent panels (throttled; no text passes)."""
        if not await _typing_allowed(conversation_id, "visitor"):
            return
        lead_id = await _conversation_lead(conversation_id)
        if lead_id is not None:
            await self.channel_layer.group_send(
                realtime.lead_group(lead_id),
                {"type": "chat.typing", "conversation": conversation_id, "from": "visitor"},
            )

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "message", "message": event["message"]})

    async def chat_messages(self, event: dict[str, Any]) -> None:
        for message in event["messages"]:  # several messages in one event: one frame each, in order
            await self.send_json({"type": "message", "message": message})

    async def chat_status(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "status", "status": event["status"], "agent": event.get("agent", "")})

    async def chat_typing(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "typing", "from": "agent", "agent": event.get("agent", "")})


@database_sync_to_async
def _may_watch(user: Any, lead_id: int) -> bool:
    lead = Lead.objects.filter(pk=lead_id).first()
    return lead is not None and user.is_authenticated and can_see_lead(user, lead)


class AgentConsumer(AsyncJsonWebsocketConsumer):
    """The agent panel's socket: logged-in staff who may see the lead (the role rule), else refused."""

    group: str = ""
    lead_id: int = 0

    async def connect(self) -> None:
        lead_id = self.scope["url_route"]["kwargs"]["lead_id"]
        self.lead_id = lead_id
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

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Only {"type": "typing", "conversation": id} of one of this lead's chats; the rest is ignored."""
        if not isinstance(content, dict) or content.get("type") != "typing":
            return
        conversation_id = await _lead_conversation(content.get("conversation"), self.lead_id)
        if conversation_id is None or not await _typing_allowed(conversation_id, "agent"):
            return
        user = self.scope["user"]
        await self.channel_layer.group_send(
            realtime.conversation_group(conversation_id),
            {"type": "chat.typing", "agent": user.first_name or user.username},
        )

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return json.loads(text_data)
        except ValueError:
            return None  # a malformed frame is ignored

    async def chat_typing(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "typing", "conversation": event["conversation"], "from": "visitor"})
