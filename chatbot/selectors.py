"""Reads of the website chat for the staff pages: live inbox, agent panel, reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet
from django.utils import timezone

from chatbot.models import Conversation, ConversationStatus, Message, Sender
from leadcrm.models import Interaction, InteractionKind, Lead


def live_conversations(*, user: Any, now: datetime | None = None) -> QuerySet[Conversation]:
    """Open conversations of leads the user may see, live or waiting for a person first."""
    now = now or timezone.now()
    visible = Lead.objects.visible_to(user)
    return (
        Conversation.objects.filter(lead__in=visible)
        .exclude(status=ConversationStatus.CLOSED)
        .filter(Q(lead__live_until__gt=now) | Q(status=ConversationStatus.WAITING))
        .select_related("lead", "site", "agent")
        .order_by("-handoff_at", "-last_message_at")[:100]
    )


def latest_conversation(lead: Lead) -> Conversation | None:
    return lead.conversations.select_related("site", "agent").order_by("-last_message_at", "-id").first()


def transcript(conversation: Conversation, *, limit: int = 200) -> list[Message]:
    return list(conversation.messages.select_related("agent").order_by("-id")[:limit])[::-1]


def page_trail(lead: Lead, *, limit: int = 10) -> list[Interaction]:
    return list(
        lead.interactions.filter(kind=InteractionKind.PAGE_VIEW).order_by("-occurred_at", "-id")[:limit]
    )


def ratings_by_site() -> list[dict[str, Any]]:
    return list(
        Conversation.objects.filter(rating__isnull=False)
        .values("site__name")
        .annotate(n=Count("id"), avg=Avg("rating"))
        .order_by("site__name")
    )


def ratings_by_agent() -> list[dict[str, Any]]:
    return list(
        Conversation.objects.filter(rating__isnull=False, agent__isnull=False)
        .values("agent__username", "agent__first_name", "agent__last_name")
        .annotate(n=Count("id"), avg=Avg("rating"))
        .order_by("agent__username")
    )


def unanswered_questions(*, limit: int = 100) -> list[Message]:
    """Visitor questions the bot could not answer (or whose answer did not help), newest first."""
    return list(
        Message.objects.filter(unanswered=True, sender=Sender.VISITOR)
        .select_related("conversation__site")
        .order_by("-created_at")[:limit]
    )


def faq_feedback() -> list[dict[str, Any]]:
    return list(
        Message.objects.filter(sender=Sender.BOT, faq__isnull=False)
        .values("faq__site__name", "faq__question")
        .annotate(
            answered=Count("id"),
            yes=Count("id", filter=Q(helpful=True)),
            no=Count("id", filter=Q(helpful=False)),
        )
        .order_by("-no", "-answered")[:50]
    )
