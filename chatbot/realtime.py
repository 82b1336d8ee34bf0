"""Real-time delivery of the chat over Channels groups: the widget, the agent panel, the inbox.

Each conversation has a group (the visitor's widget), each lead a group (its agent panels), and
the live inbox one group. Broadcasts leave only after the transaction commits, so nobody is shown
a message that was rolled back, and never make the request wait. Delivery is best effort: a
failed send is logged, the message stays stored, and a client that missed it catches up over HTTP
when it reconnects. `message_json` is the one shape of a message for sockets and HTTP alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from chatbot.models import Conversation, Message, Sender
from leadcrm import alerts
from leadcrm.realtime import send_on_commit

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


def alert_waiting(
    conversation: Conversation, *, routed_to: int | None = None, kind: str = "chat.waiting"
) -> None:
    """After commit: "a visitor is waiting for a person" to the staff pages (leadcrm.alerts).

    The one place chat alerts are published, for the hand-off and for routing (`leadcrm.routing`):
    `routed_to` (a user id) alerts that user's pages only; None alerts every staff page. `kind` is
    "chat.waiting", or "chat.offered" / "chat.escalated" when nobody answered in time (escalated
    also goes to the managers' pages). The frame carries ids, never the visitor's name or words:
    it may reach a salesperson who may not see the lead, and each page reads what it may show from
    the waiting list endpoint (`chatbot:waiting`), filtered by the viewer's role.
    """
    since = conversation.handoff_at.isoformat() if conversation.handoff_at else None
    data = {
        "conversation": conversation.pk,
        "lead": conversation.lead_id,
        "routed_to": routed_to,
        "since": since,
    }
    if routed_to is None:
        alerts.publish(kind, data, everyone=True)
    else:
        alerts.publish(kind, data, users=[routed_to], managers=kind == "chat.escalated")


def alert_taken(conversation: Conversation) -> None:
    """After commit: someone joined the chat; every staff page drops it from its waiting strip."""
    alerts.publish(
        "chat.taken",
        {"conversation": conversation.pk, "lead": conversation.lead_id, "agent": conversation.agent_id},
        everyone=True,
    )
