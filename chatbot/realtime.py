"""Real-time delivery of the chat over Channels groups: the widget, the agent panel, the inbox.

Each conversation has a group (the visitor's widget), each lead a group (its agent panels), and
the live inbox one group. Broadcasts leave only after the transaction commits, so nobody is shown
a message that was rolled back, and never make the request wait. Delivery is best effort: a
failed send is logged, the message stays stored, and a client that missed it catches up over HTTP
when it reconnects. `message_json` is the one shape of a message for sockets and HTTP alike.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chatbot.models import Conversation, Message, Sender

logger = logging.getLogger(__name__)

INBOX_GROUP = "chat.inbox"


def conversation_group(conversation_id: int) -> str:
    """The group of a conversation's widget."""
    return f"chat.conv.{conversation_id}"


def lead_group(lead_id: int) -> str:
    """The group of a lead's agent panels."""
    return f"chat.lead.{lead_id}"


def _groups(conversation: Conversation, *extra: str) -> tuple[str, ...]:
    """The conversation's widget group, its lead's panels' group once it has a lead, and `extra`."""
    lead = () if conversation.lead_id is None else (lead_group(conversation.lead_id),)
    return (conversation_group(conversation.pk), *lead, *extra)


def message_json(message: Message) -> dict[str, Any]:
    """The one shape of a message for the widget, the agent panel and the API."""
    agent_name = ""
    if message.sender == Sender.AGENT and message.agent is not None:  # no query when agent_id is None
        agent_name = message.agent.first_name or message.agent.username
    return {
        "id": message.pk,
        "from": message.sender,
        "text": message.text,
        "at": message.created_at.isoformat(),
        "actions": message.actions,
        "agent": agent_name,
        "faq": message.faq_id,
        "helpful": message.helpful,
        "client_id": message.client_id,
    }


def send_now(groups: Iterable[str], *events: dict[str, Any]) -> None:
    """Deliver events to channel-layer groups, in order, without making the request wait.

    Under the ASGI server the request runs in a worker thread next to a running event loop:
    the sends are scheduled on that loop and the request returns at once (a reply must not
    wait for Redis round trips). Elsewhere (tests, commands, Celery) they run to completion.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    pairs = [(group, event) for event in events for group in groups]

    async def deliver() -> None:
        for group, event in pairs:
            try:
                # Bounded: a hung Redis must not hold the request (or the loop's task) for long.
                await asyncio.wait_for(layer.group_send(group, event), timeout=SEND_TIMEOUT_S)
            except Exception as exc:
                # Best-effort: the message is stored; clients resync when they (re)connect.
                _report_send_failure(group, exc)
                return  # the layer is away: the other groups would wait just as long

    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is not None and loop.is_running():
        asyncio.run_coroutine_threadsafe(deliver(), loop)
        return
    try:
        async_to_sync(deliver)()
    except RuntimeError:
        # Sync code called from a thread that owns an event loop (e.g. a Playwright test):
        # deliver from a short-lived thread with its own loop.
        worker = threading.Thread(target=asyncio.run, args=(deliver(),), daemon=True)
        worker.start()
        worker.join(timeout=5)


SEND_TIMEOUT_S = 1.0
_last_failure_logged = 0.0


def _report_send_failure(group: str, exc: BaseException) -> None:
    """One warning per 30 s while the channel layer is away, not one traceback per message."""
    global _last_failure_logged
    if time.monotonic() - _last_failure_logged > 30:
        _last_failure_logged = time.monotonic()
        logger.warning(
            "Could not deliver chat events (to %s and maybe others): %s: %s; messages are stored and "
            "clients catch up when they reconnect",
            group,
            type(exc).__name__,
            exc,
        )


def send_on_commit(groups: Sequence[str], *events: dict[str, Any]) -> None:
    """Deliver events with send_now once the transaction commits; nothing if it rolls back."""

    def send_chat_events() -> None:  # a named callable: robust on_commit logs its __qualname__
        try:
            send_now(groups, *events)
        except Exception:
            logger.warning("Could not deliver chat events to %s", groups, exc_info=True)

    transaction.on_commit(send_chat_events, robust=True)


def broadcast_messages(conversation: Conversation, messages: Sequence[Message]) -> None:
    """After commit: new messages to the conversation's widget and the lead's agent panels."""
    payloads = [message_json(m) for m in messages]
    if not payloads:
        return
    groups = _groups(conversation)
    if len(payloads) == 1:
        event = {"type": "chat.message", "message": payloads[0], "conversation": conversation.pk}
    else:
        # A visitor message and the bot's reply travel as one event per group: each group_send
        # costs several Redis round trips; the consumers still send one frame per message.
        event = {"type": "chat.messages", "messages": payloads, "conversation": conversation.pk}
    send_on_commit(groups, event)


def broadcast_status(conversation: Conversation, **extra: Any) -> None:
    """After commit: the conversation's status and agent to the widget, the panels and the inbox."""
    agent = conversation.agent  # no query when agent_id is None
    event = {
        "type": "chat.status",
        "conversation": conversation.pk,
        "status": conversation.status,
        "agent": (agent.first_name or agent.username) if agent is not None else "",
        **extra,
    }
    send_on_commit(_groups(conversation, INBOX_GROUP), event)


def broadcast_page_view(conversation: Conversation, *, url: str, title: str, now: datetime) -> None:
    """After commit: the page the visitor is now on, to the lead's agent panels (if it has a lead)."""
    if conversation.lead_id is None:
        return
    event = {
        "type": "chat.page",
        "conversation": conversation.pk,
        "url": url,
        "title": title,
        "at": now.isoformat(),
    }
    send_on_commit((lead_group(conversation.lead_id),), event)
