"""The chat's figures for the manager reports: how fast each salesperson answers a handed-off chat.

Answers `leadcrm.signals.report_chat_responses` (the CRM core asks; it does not import the chat).
One query: each handed-off chat with its first agent message after the handoff (a subquery on
the message table), then a median per salesperson over those rows.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db.models import OuterRef, Subquery

from chatbot.models import Conversation, Message, Sender
from leadcrm.reports import ChatResponse, median_seconds


def chat_responses(*, since: datetime | None, until: datetime) -> dict[int, ChatResponse]:
    """Per salesperson, chats handed off in [since, until]: answered (credited to whoever sent the
    first agent message), the median seconds from handoff to that message, and unanswered ones
    (credited to the chat's assigned agent, if any)."""
    first_reply = Message.objects.filter(
        conversation=OuterRef("pk"), sender=Sender.AGENT, created_at__gte=OuterRef("handoff_at")
    ).order_by("created_at", "id")
    chats = Conversation.objects.filter(handoff_at__isnull=False, handoff_at__lte=until)
    if since is not None:
        chats = chats.filter(handoff_at__gte=since)
    rows = (
        chats.order_by()
        .annotate(
            reply_at=Subquery(first_reply.values("created_at")[:1]),
            reply_by=Subquery(first_reply.values("agent")[:1]),
        )
        .values_list("handoff_at", "reply_at", "reply_by", "agent")
    )
    waits: dict[int, list[float]] = defaultdict(list)
    unanswered: dict[int, int] = defaultdict(int)
    for handoff_at, reply_at, reply_by, agent in rows:  # one row per chat from a single query
        if reply_at is not None and reply_by is not None:
            waits[reply_by].append((reply_at - handoff_at).total_seconds())
        elif reply_at is None and agent is not None:
            unanswered[agent] += 1
    return {
        user: ChatResponse(
            len(waits.get(user, [])), median_seconds(waits.get(user, [])), unanswered.get(user, 0)
        )
        for user in set(waits) | set(unanswered)
    }


def answer_report(
    sender: Any, *, since: datetime | None, until: datetime, **kwargs: Any
) -> dict[int, ChatResponse]:
    """The `report_chat_responses` receiver."""
    return chat_responses(since=since, until=until)
