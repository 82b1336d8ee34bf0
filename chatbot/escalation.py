"""A chat waiting for a person is never left unseen (docs/chat.md#routing).

When a visitor is handed off, `chatbot.services` routes the chat (`leadcrm.routing.route`: the
lead's owner on duty, else the next salesperson on duty, else a manager on duty), stores who and
when (`Conversation.routed_to`, `routed_at`) and alerts that person. Then, while nobody answered
(the chat is still *waiting*: no agent joined, no agent wrote):

- `CHAT_OFFER_ALL_AFTER_S` seconds after it started waiting, it is offered to everyone on duty
  ("chat.offered" to every staff page; `offered_at`);
- `CHAT_ESCALATE_AFTER_S` seconds after, the managers are alerted ("chat.escalated";
  `escalated_at`).

A countdown task per chat (`chatbot.tasks.advance_waiting_chat`, sent after the hand-off commits)
does each step on time; the beat task `chatbot.tasks.advance_waiting_chats` (every 15 s) does the
same for all waiting chats, so a lost task delays a step by at most a sweep. Both run
`advance_waiting_chats`: set-based, each step stamped once under SKIP LOCKED row locks, so a task
and the sweep running together alert once.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from chatbot import realtime
from chatbot.models import Conversation, ConversationStatus
from leadcrm import routing

BATCH = 500  # chats per step per pass; the rest go on the next pass


def offer_after() -> timedelta:
    return timedelta(seconds=settings.CHAT_OFFER_ALL_AFTER_S)


def escalate_after() -> timedelta:
    return timedelta(seconds=settings.CHAT_ESCALATE_AFTER_S)


def waiting() -> QuerySet[Conversation]:
    """Chats waiting for a person: handed off, nobody joined or wrote yet."""
    return Conversation.objects.filter(
        status=ConversationStatus.WAITING, agent__isnull=True, routed_at__isnull=False
    )


def _step(chats: QuerySet[Conversation], stamp: str, now: datetime) -> list[Conversation]:
    """Lock the chats due for a step (skipping locked ones), stamp them, and return them."""
    due = list(
        chats.select_for_update(skip_locked=True, of=("self",))
        .order_by("routed_at")
        .only("pk", "lead_id", "routed_to_id", "handoff_at", "routed_at")[:BATCH]
    )
    Conversation.objects.filter(pk__in=[c.pk for c in due]).update(**{stamp: now})
    return due


def advance_waiting_chats(
    *, now: datetime | None = None, ids: Collection[int] | None = None
) -> tuple[int, int]:
    """Offer to everyone, then escalate to the managers, the waiting chats (all, or `ids`) whose
    time came. Idempotent; returns (offered, escalated)."""
    now = now or timezone.now()
    chats = waiting() if ids is None else waiting().filter(pk__in=list(ids))
    with transaction.atomic():
        offered = _step(
            chats.filter(offered_at__isnull=True, routed_at__lte=now - offer_after()), "offered_at", now
        )
        for chat in offered:
            realtime.alert_waiting(chat, routed_to=None, kind="chat.offered")
        escalated = _step(
            chats.filter(escalated_at__isnull=True, routed_at__lte=now - escalate_after()),
            "escalated_at",
            now,
        )
        for chat in escalated:
            realtime.alert_waiting(chat, routed_to=chat.routed_to_id, kind="chat.escalated")
    return len(offered), len(escalated)


def answerable_by(user: Any) -> Q:
    """Open chats `user` may see and answer even on a lead they may not see otherwise (another
    salesperson's): routed to them, joined by them, or offered to everyone while they are on duty.
    Combined with `Lead.objects.visible_to` by the inbox and the agent panel's views."""
    if not getattr(user, "is_authenticated", False) or not routing.is_staff_member(user):
        return Q(pk__in=[])
    mine = Q(routed_to=user) | Q(agent=user)
    if routing.is_on_duty(user):
        mine |= Q(offered_at__isnull=False, status=ConversationStatus.WAITING)
    return mine & ~Q(status=ConversationStatus.CLOSED)
