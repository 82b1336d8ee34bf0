"""Reads of the website chat for the staff pages: live inbox, agent panel, reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet
from django.utils import timezone

from chatbot.escalation import answerable_by
from chatbot.intents import content_words
from chatbot.models import Conversation, ConversationStatus, Message, Resolution, Sender, Site
from leadcrm.models import Interaction, InteractionKind, Lead


def live_conversations(*, user: Any, now: datetime | None = None) -> QuerySet[Conversation]:
    """Open conversations of leads the user may see, live or waiting for a person first."""
    now = now or timezone.now()
    visible = Lead.objects.visible_to(user)
    return (
        # ... and chats routed or offered to the user on leads they may not see otherwise.
        Conversation.objects.filter(Q(lead__in=visible) | answerable_by(user), lead__isnull=False)
        .exclude(status=ConversationStatus.CLOSED)
        .filter(Q(lead__live_until__gt=now) | Q(status=ConversationStatus.WAITING))
        .select_related("lead", "site", "agent", "routed_to")
        .order_by("-handoff_at", "-last_message_at")[:100]
    )


def waiting_conversations(*, user: Any, limit: int = 50) -> list[Conversation]:
    """Chats waiting for a person on leads the user may see, longest waiting first: one query."""
    return list(
        Conversation.objects.filter(status=ConversationStatus.WAITING, lead__in=Lead.objects.visible_to(user))
        .select_related("lead", "site")
        .only(
            "id",
            "handoff_at",
            "last_message_at",
            "routed_to_id",
            "site__name",
            "lead__id",
            "lead__first_name",
            "lead__last_name",
            "lead__email",
            "lead__company_name",
            "lead__erased_at",
        )
        .order_by("handoff_at", "id")[:limit]
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


def unanswered_groups(site: Site, *, window: int = 500, limit: int = 100) -> list[dict[str, Any]]:
    """The site's open unanswered questions, newest first, grouped by their content words: each
    group is {"message": newest, "count": n, "others": up to 3 other wordings}."""
    rows = (
        Message.objects.filter(
            conversation__site=site, sender=Sender.VISITOR, unanswered=True, resolution=Resolution.OPEN
        )
        .only("id", "text", "created_at", "confidence", "conversation_id")
        .order_by("-created_at", "-id")[:window]
    )
    groups: dict[str, dict[str, Any]] = {}
    for message in rows:
        group = groups.setdefault(content_words(message.text), {"message": message, "count": 0, "others": []})
        group["count"] += 1
        if message.text != group["message"].text and message.text not in group["others"][:3]:
            group["others"].append(message.text)
    return [{**g, "others": g["others"][:3]} for g in groups.values()][:limit]


def unanswered_counts() -> list[dict[str, Any]]:
    """Per site: visitor questions the bot did not answer, still open, and what managers did with them."""
    return list(
        Message.objects.filter(sender=Sender.VISITOR, unanswered=True)
        .values("conversation__site_id", "conversation__site__name")
        .annotate(
            total=Count("id"),
            open=Count("id", filter=Q(resolution=Resolution.OPEN)),
            added=Count("id", filter=Q(resolution__in=[Resolution.NEW_ENTRY, Resolution.VARIANT])),
            dismissed=Count("id", filter=Q(resolution=Resolution.DISMISSED)),
        )
        .order_by("conversation__site__name")
    )
