"""The conversation flow of the website chat, from the first greeting to the rating.

Starting or resuming a conversation, visitor messages and the bot's turn, hand-off to a person,
the visitor's identity and consent, callbacks, a salesperson taking over and replying, page
views, the "live now" heartbeat, "did that help?" feedback, closing, and proactive messages.

Every visitor and agent message is stored as a Message and as a chat_message Interaction on the
lead. Leads and interactions are written through `leadcrm.services` alone (which queues the
rescore after commit); this module writes neither itself. Every change is broadcast through
`chatbot.realtime` after commit: if the channel layer is down the message is still stored and the
widget fetches it when it reconnects. The bot's answers come from `chatbot.faq`; the site's checks
(origin, signed identity, business hours) are methods of `Site`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from chatbot import bot, realtime
from chatbot.faq import best_faq
from chatbot.models import (
    Conversation,
    ConversationStatus,
    Message,
    ProactiveMessage,
    SegmentFlow,
    Sender,
    Site,
)
from chatbot.sentiment import sentiment_score
from leadcrm import services as crm
from leadcrm.models import FollowUp, Lead, LeadSource, SegmentMembership
from leadcrm.permissions import is_salesperson

LIVE_FOR = timedelta(minutes=2)
MAX_MESSAGE_CHARS = 1000
MAX_TRAIL = 20
VISITOR_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


# --- Leads ------------------------------------------------------------------------------------------


def _touch_live(lead_id: int, now: datetime) -> None:
    crm.mark_live(lead_id=lead_id, until=now + LIVE_FOR)


def _valid_timezone(name: str) -> str:
    try:
        bot.ZoneInfo(name)
    except Exception:
        return ""
    return name if name else ""


def _lead_for_visitor(
    *, site: Site, visitor_id: str, email: str, first_name: str, last_name: str, language: str, tz: str
) -> Lead:
    """Match by (verified) email, else by visitor id; else create a chat lead."""
    lead = None
    if email:
        lead = Lead.objects.filter(email__iexact=email).first()
    if lead is None:
        lead = Lead.objects.filter(visitor_id=visitor_id).order_by("-id").first()
    profile = {"preferred_language": language[:10], "timezone": _valid_timezone(tz)}
    if lead is None:
        # Any, as create_lead's **fields: a dict[str, str] could also fill its `now` (a datetime).
        fields: dict[str, Any] = {k: v for k, v in profile.items() if v}
        if email:
            fields.update(email=email, first_name=first_name[:100], last_name=last_name[:100])
        return crm.create_lead(source=LeadSource.CHAT, visitor_id=visitor_id, **fields)
    missing: dict[str, Any] = {k: v for k, v in profile.items() if v and not getattr(lead, k)}
    if lead.visitor_id != visitor_id:
        missing["visitor_id"] = visitor_id
    if missing:
        crm.update_lead(lead=lead, **missing)
    return lead


def _segment_flow(site: Site, lead: Lead) -> SegmentFlow | None:
    segments = SegmentMembership.objects.filter(lead=lead).values("segment_id")
    return SegmentFlow.objects.filter(site=site, segment_id__in=segments).order_by("-priority", "id").first()


def _split_name(name: str) -> tuple[str, str]:
    parts = name.strip().split(None, 1)
    if not parts:
        return "", ""
    return parts[0][:100], (parts[1] if len(parts) > 1 else "")[:100]


# --- Conversations ----------------------------------------------------------------------------------


def _bot_message(conversation: Conversation, text: str, now: datetime, **fields: Any) -> Message:
    return Message.objects.create(
        conversation=conversation, sender=Sender.BOT, text=text, created_at=now, **fields
    )


def _record_pages(lead: Lead, pages: Sequence[dict[str, Any]], now: datetime) -> None:
    for page in list(pages)[-MAX_TRAIL:]:
        url = str(page.get("url") or "")[:500]
        if not url:
            continue
        at = page.get("at")
        occurred = at if isinstance(at, datetime) and at <= now else now
        crm.record_interaction(
            lead=lead,
            kind="page_view",
            occurred_at=occurred,
            payload={"url": url, "title": str(page.get("title") or "")[:200], "via": "chat_widget"},
        )


@transaction.atomic
def start_conversation(
    *,
    site: Site,
    visitor_id: str = "",
    page_url: str = "",
    page_title: str = "",
    language: str = "",
    tz: str = "",
    trail: Sequence[dict[str, Any]] = (),
    identity_email: str = "",
    identity_name: str = "",
    identity_signature: str = "",
    now: datetime | None = None,
) -> tuple[Conversation, bool]:
    """Resume the visitor's open conversation on this site, or start one (greeting included)."""
    now = now or timezone.now()
    if not VISITOR_ID_RE.match(visitor_id or ""):
        from secrets import token_urlsafe

        visitor_id = "v_" + token_urlsafe(16)
    existing = (
        Conversation.objects.filter(site=site, visitor_id=visitor_id)
        .exclude(status=ConversationStatus.CLOSED)
        .select_related("lead")
        .order_by("-id")
        .first()
    )
    if existing is not None:
        _touch_live(existing.lead_id, now)
        if page_url:
            record_page_view(conversation=existing, url=page_url, title=page_title, now=now)
        return existing, False

    verified = site.verify_identity(identity_email, identity_signature)
    email = identity_email.strip().lower() if verified else ""
    first, last = _split_name(identity_name) if verified else ("", "")
    lead = _lead_for_visitor(
        site=site,
        visitor_id=visitor_id,
        email=email,
        first_name=first,
        last_name=last,
        language=language,
        tz=tz,
    )
    conversation = Conversation.objects.create(
        site=site,
        lead=lead,
        visitor_id=visitor_id,
        identity_verified=verified,
        current_url=page_url[:500],
        current_title=page_title[:200],
        started_at=now,
        last_message_at=now,
    )
    # A name is used only if the visitor told us (in chat) or the page's identity was verified.
    name = lead.first_name if (verified or lead.contact_consent) else ""
    flow = _segment_flow(site, lead)
    messages = [
        _bot_message(
            conversation,
            bot.greeting(
                site.greetings, tz=site.timezone, now=now, name=name, template=flow.greeting if flow else ""
            ),
            now,
            actions=[bot.HUMAN_ACTION],
        )
    ]
    if flow and flow.offer:
        messages.append(_bot_message(conversation, flow.offer, now))
    if not site.is_open(now):
        opens = bot.next_opening(site.business_hours, site.timezone, now)
        when = f" (back {bot.format_opening(opens)})" if opens else ""
        messages.append(
            _bot_message(
                conversation,
                f"Our team is offline right now{when}. I can answer common questions or arrange a callback.",
                now,
            )
        )
    pages = [*trail, {"url": page_url, "title": page_title}] if page_url else list(trail)
    _record_pages(lead, pages, now)
    _touch_live(lead.pk, now)
    realtime.broadcast_status(conversation, event="started")
    return conversation, True


def _apply_stated_profile(lead: Lead, reply: bot.Reply) -> None:
    # Only what is new: a visitor repeating a known interest or city costs no lead write (a full
    # validation, an update and a rescore request for data that did not change).
    changes: dict[str, Any] = {}
    if reply.interests:
        custom = dict(lead.custom or {})
        known = list(custom.get("interested_in") or [])
        new = [i for i in reply.interests if i not in known]
        if new:
            custom["interested_in"] = known + new
            changes["custom"] = custom
    if reply.city and reply.city[:100] != lead.city:
        changes["city"] = reply.city[:100]
    if changes:
        crm.update_lead(lead=lead, **changes)


@transaction.atomic
def post_visitor_message(
    *,
    conversation: Conversation | None = None,
    site: Site | None = None,
    token: str = "",
    text: str,
    client_id: str = "",
    now: datetime | None = None,
) -> list[Message]:
    """Store a visitor message (+ interaction with sentiment) and the bot's reply if the bot is on.

    Give the conversation, or the site and the visitor's conversation token (one query fewer on
    the hot path); an unknown token raises Conversation.DoesNotExist.
    """
    now = now or timezone.now()
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": "Write a message first."})
    if len(text) > MAX_MESSAGE_CHARS:
        raise ValidationError({"text": f"Messages are limited to {MAX_MESSAGE_CHARS} characters."})
    client_id = (client_id or "")[:40]
    # The row lock serialises this visitor's messages, so the resend check below cannot race.
    # of=self: without it PostgreSQL also locks the joined site row and serialises every chat.
    # The lead (46 columns) is not joined: most messages need only lead_id; the few that change
    # the lead's profile or hand off load it when they do.
    locked = Conversation.objects.select_for_update(of=("self",)).select_related("site")
    if conversation is not None:
        conversation = locked.get(pk=conversation.pk)
    else:
        conversation = locked.get(token=token, site=site)
    if client_id:
        first = conversation.messages.filter(client_id=client_id).first()
        if first is not None:  # a resend after a network drop: answer with what we stored
            return _messages_since(conversation, first)
    if conversation.status == ConversationStatus.CLOSED:
        conversation.status = ConversationStatus.BOT
        conversation.closed_at = None
    score = sentiment_score(text)
    reply = _decide(conversation, text, score) if conversation.status == ConversationStatus.BOT else None
    visitor_message = Message.objects.create(
        conversation=conversation,
        sender=Sender.VISITOR,
        text=text,
        client_id=client_id,
        sentiment=score,
        unanswered=bool(reply and reply.unanswered),
        confidence=reply.confidence if reply and reply.unanswered else None,
        created_at=now,
    )
    crm.record_interaction(
        lead=conversation.lead_id,
        kind="chat_message",
        occurred_at=now,
        payload={"text": text, "conversation_id": conversation.pk, "from": Sender.VISITOR},
        sentiment=score,
    )
    out = [visitor_message]
    if reply is not None:
        out += _bot_turn(conversation, reply, now)
    else:
        conversation.negative_count += int(bot.is_negative(score))
    conversation.last_message_at = now
    conversation.save(
        update_fields=["status", "closed_at", "unsure_count", "negative_count", "last_message_at"]
    )
    _touch_live(conversation.lead_id, now)
    realtime.broadcast_messages(conversation, out)
    return out


def _decide(conversation: Conversation, text: str, score: float) -> bot.Reply:
    site = conversation.site
    state = bot.BotState(
        unsure_count=conversation.unsure_count,
        negative_count=conversation.negative_count,
        negative_limit=site.negative_messages_for_handoff,
        threshold=site.faq_threshold,
    )
    hit = None if bot.wants_human(text) else best_faq(site, text)
    return bot.reply_to(text, state=state, hit=hit, sentiment=score)


def _bot_turn(conversation: Conversation, reply: bot.Reply, now: datetime) -> list[Message]:
    conversation.unsure_count = reply.unsure_count
    conversation.negative_count = reply.negative_count
    if reply.interests or reply.city:
        _apply_stated_profile(conversation.lead, reply)
    if reply.action == "handoff":
        out = [_bot_message(conversation, reply.text, now)] if reply.text else []
        return out + _handoff(conversation, now)
    return [
        _bot_message(
            conversation,
            reply.text,
            now,
            faq_id=reply.faq_id if reply.action == "answer" else None,
            confidence=reply.confidence,
            actions=reply.actions,
        )
    ]


def _messages_since(conversation: Conversation, first: Message) -> list[Message]:
    later = list(conversation.messages.filter(id__gt=first.pk).select_related("agent")[:10])
    following = []
    for m in later:
        if m.sender == Sender.VISITOR:
            break
        following.append(m)
    return [first, *following]


def _has_contact(lead: Lead) -> bool:
    return bool(lead.email or lead.phone) and lead.contact_consent


def _handoff(conversation: Conversation, now: datetime) -> list[Message]:
    site = conversation.site
    is_open = site.is_open(now)
    if conversation.handoff_at is None:
        conversation.handoff_at = now
        conversation.save(update_fields=["handoff_at"])
    text, actions = bot.handoff_text(
        open_now=is_open,
        opens_at=None if is_open else bot.next_opening(site.business_hours, site.timezone, now),
        has_contact=_has_contact(conversation.lead),
    )
    if is_open and conversation.status == ConversationStatus.BOT:
        conversation.status = ConversationStatus.WAITING
        conversation.save(update_fields=["status"])
        realtime.broadcast_status(conversation, event="handoff")
    conversation.unsure_count = 0
    return [_bot_message(conversation, text, now, actions=actions)]


@transaction.atomic
def request_handoff(*, conversation: Conversation, now: datetime | None = None) -> list[Message]:
    """The visitor asked for a person (button): wait for one in hours, offer a callback out of hours."""
    now = now or timezone.now()
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("site", "lead")
        .get(pk=conversation.pk)
    )
    if conversation.status in (ConversationStatus.WAITING, ConversationStatus.HUMAN):
        return []
    if conversation.status == ConversationStatus.CLOSED:
        conversation.status = ConversationStatus.BOT
        conversation.save(update_fields=["status"])
    out = _handoff(conversation, now)
    conversation.last_message_at = now
    conversation.save(update_fields=["last_message_at", "unsure_count"])
    _touch_live(conversation.lead_id, now)
    realtime.broadcast_messages(conversation, out)
    return out


@transaction.atomic
def identify_visitor(
    *,
    conversation: Conversation,
    name: str = "",
    email: str = "",
    phone: str = "",
    contact_consent: bool = False,
    marketing_consent: bool = False,
    now: datetime | None = None,
) -> Lead:
    """Store the name/email/phone the visitor typed, with their consent and its time, on the lead."""
    now = now or timezone.now()
    email = (email or "").strip().lower()
    phone = (phone or "").strip()[:40]
    name = (name or "").strip()[:200]
    if not (email or phone or name):
        raise ValidationError({"email": "Give at least your name, email or phone."})
    if (email or phone) and not contact_consent:
        raise ValidationError(
            {"contact_consent": "Please agree that we may store your details and contact you."}
        )
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise ValidationError({"email": "That email address does not look right."}) from None
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("lead", "site")
        .get(pk=conversation.pk)
    )
    lead = conversation.lead
    if email and (lead.email or "").lower() != email:
        existing = Lead.objects.filter(email__iexact=email).exclude(pk=lead.pk).first()
        if existing is not None:
            lead = _merge_visitor_lead(anonymous=lead, into=existing, conversation=conversation)
    first, last = _split_name(name)
    fields: dict[str, Any] = {"visitor_id": conversation.visitor_id}
    if first:
        fields.update(first_name=first, last_name=last or lead.last_name)
    if email:
        fields["email"] = email
    if phone:
        fields["phone"] = phone
    if contact_consent:
        fields.update(contact_consent=True, contact_consent_at=now)
    if marketing_consent:
        fields.update(marketing_consent=True, marketing_consent_at=now)
    lead = crm.update_lead(lead=lead, now=now, **fields)
    thanks = f"Thanks{', ' + first if first else ''}! We've saved your details."
    actions: list[dict[str, Any]] = []
    site = conversation.site
    if conversation.handoff_at and not site.is_open(now):
        opens = bot.next_opening(site.business_hours, site.timezone, now)
        if opens:
            actions = [
                {
                    "type": "callback",
                    "due_at": opens.isoformat(),
                    "label": f"Call me back {bot.format_opening(opens)}",
                }
            ]
            thanks += " Shall we call you back when we open?"
    message = _bot_message(conversation, thanks, now, actions=actions)
    realtime.broadcast_messages(conversation, [message])
    _touch_live(lead.pk, now)
    return lead


def _merge_visitor_lead(*, anonymous: Lead, into: Lead, conversation: Conversation) -> Lead:
    """The visitor turned out to be a known lead: move the chat's history over (set-based)."""
    crm.move_interactions(from_lead=anonymous, to_lead=into)
    Conversation.objects.filter(lead=anonymous).update(lead=into)
    conversation.lead = into
    if anonymous.source == LeadSource.CHAT and not anonymous.email and not anonymous.owner_id:
        crm.delete_lead(lead=anonymous)
    return into


@transaction.atomic
def schedule_callback(
    *, conversation: Conversation, due_at: datetime, note: str = "", now: datetime | None = None
) -> FollowUp:
    """Out of hours: a follow-up for the owner (or the site's handoff person) to call the visitor back."""
    now = now or timezone.now()
    conversation = Conversation.objects.select_related("lead", "site").get(pk=conversation.pk)
    lead = conversation.lead
    if not _has_contact(lead):
        raise ValidationError(
            {"contact": "Leave your email or phone (and your consent) first, so we can call you."}
        )
    if due_at <= now - timedelta(minutes=1) or due_at > now + timedelta(days=14):
        raise ValidationError({"due_at": "Pick a time within the next two weeks."})
    existing = FollowUp.objects.filter(
        lead=lead, done_at__isnull=True, note__startswith="Chat callback"
    ).first()
    if existing is not None:
        existing.due_at = due_at
        existing.save(update_fields=["due_at"])
        follow_up = existing
    else:
        follow_up = crm.add_follow_up(
            lead=lead,
            due_at=due_at,
            note=f"Chat callback requested on {conversation.site.name}. {note}".strip()[:1000],
            assigned_to=lead.owner or conversation.site.handoff_owner,
            now=now,
        )
    local = due_at.astimezone(bot.ZoneInfo(conversation.site.timezone))
    message = _bot_message(conversation, f"Done: we'll call you back {bot.format_opening(local)}.", now)
    realtime.broadcast_messages(conversation, [message])
    return follow_up


@transaction.atomic
def take_over(*, conversation: Conversation, user: User, now: datetime | None = None) -> Conversation:
    """A salesperson takes the chat from the bot (claims an unassigned lead); the visitor is told."""
    now = now or timezone.now()
    conversation = (
        Conversation.objects.select_for_update(of=("self",)).select_related("lead").get(pk=conversation.pk)
    )
    if conversation.status == ConversationStatus.HUMAN and conversation.agent_id == user.pk:
        return conversation
    lead = conversation.lead
    if lead.owner_id is None and is_salesperson(user):
        crm.claim_lead(lead=lead, user=user)
    conversation.status = ConversationStatus.HUMAN
    conversation.agent = user
    conversation.closed_at = None
    conversation.save(update_fields=["status", "agent", "closed_at"])
    who = user.first_name or user.username
    message = _bot_message(conversation, f"{who} from our team has joined the chat.", now)
    realtime.broadcast_messages(conversation, [message])
    realtime.broadcast_status(conversation, event="taken_over")
    return conversation


@transaction.atomic
def post_agent_message(
    *, conversation: Conversation, user: User, text: str, now: datetime | None = None
) -> Message:
    """A salesperson's reply: stored, logged as an interaction, pushed to the visitor in real time."""
    now = now or timezone.now()
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": "Write a reply first."})
    if len(text) > 4000:
        raise ValidationError({"text": "Replies are limited to 4000 characters."})
    if conversation.status != ConversationStatus.HUMAN or conversation.agent_id != user.pk:
        conversation = take_over(conversation=conversation, user=user, now=now)
    message = Message.objects.create(
        conversation=conversation, sender=Sender.AGENT, text=text, agent=user, created_at=now
    )
    crm.record_interaction(
        lead=conversation.lead_id,
        kind="chat_message",
        occurred_at=now,
        payload={"text": text, "conversation_id": conversation.pk, "from": Sender.AGENT},
        logged_by=user,
    )
    Conversation.objects.filter(pk=conversation.pk).update(last_message_at=now)
    realtime.broadcast_messages(conversation, [message])
    return message


@transaction.atomic
def record_page_view(
    *, conversation: Conversation, url: str, title: str = "", now: datetime | None = None
) -> None:
    """The visitor moved to another page: a page-view interaction, and 'now on' for the agent."""
    now = now or timezone.now()
    url = (url or "").strip()[:500]
    if not url.startswith(("http://", "https://", "/")):
        raise ValidationError({"url": "Give the page's URL, e.g. https://example.com/pricing."})
    title = (title or "").strip()[:200]
    crm.record_interaction(
        lead=conversation.lead_id,
        kind="page_view",
        occurred_at=now,
        payload={"url": url, "title": title, "via": "chat_widget"},
    )
    Conversation.objects.filter(pk=conversation.pk).update(current_url=url, current_title=title)
    _touch_live(conversation.lead_id, now)
    realtime.broadcast_page_view(conversation, url=url, title=title, now=now)


def heartbeat(*, conversation: Conversation, now: datetime | None = None) -> None:
    """The widget is open: keep the lead 'live now' for another couple of minutes."""
    if conversation.status != ConversationStatus.CLOSED:
        _touch_live(conversation.lead_id, now or timezone.now())


@transaction.atomic
def record_feedback(
    *, conversation: Conversation, message_id: int, helpful: bool, now: datetime | None = None
) -> list[Message]:
    """'Did that help?': stored on the bot answer; a 'no' flags the question as unanswered."""
    now = now or timezone.now()
    answer = conversation.messages.filter(pk=message_id, sender=Sender.BOT).first()
    if answer is None:
        raise ValidationError({"message": "No bot answer with that id in this conversation."})
    answer.helpful = helpful
    answer.save(update_fields=["helpful"])
    if helpful:
        return []
    question = conversation.messages.filter(sender=Sender.VISITOR, id__lt=answer.pk).order_by("-id").first()
    if question is not None:
        Message.objects.filter(pk=question.pk).update(unanswered=True, confidence=answer.confidence)
    reply = _bot_message(
        conversation,
        "Sorry about that. Could you rephrase, or would you like a person?",
        now,
        actions=[bot.HUMAN_ACTION],
    )
    realtime.broadcast_messages(conversation, [reply])
    return [reply]


@transaction.atomic
def close_conversation(
    *, conversation: Conversation, rating: int | None = None, comment: str = "", now: datetime | None = None
) -> Conversation:
    """The visitor ended the chat (optionally rating it 1–5); the lead is no longer live."""
    now = now or timezone.now()
    if rating is not None and not (1 <= int(rating) <= 5):
        raise ValidationError({"rating": "Rate from 1 to 5."})
    conversation.status = ConversationStatus.CLOSED
    conversation.closed_at = now
    if rating is not None:
        conversation.rating = int(rating)
    if comment:
        conversation.rating_comment = comment.strip()[:2000]
    conversation.save(update_fields=["status", "closed_at", "rating", "rating_comment"])
    crm.mark_live(lead_id=conversation.lead_id, until=None)
    realtime.broadcast_status(conversation, event="closed")
    return conversation


def proactive_for(site: Site, *, lead: Lead | None) -> list[dict[str, Any]]:
    """Proactive messages the widget may show: all-visitor ones, plus the visitor's segments' ones."""
    messages = ProactiveMessage.objects.filter(site=site, active=True)
    segments = set()
    if lead is not None:
        segments = set(SegmentMembership.objects.filter(lead=lead).values_list("segment_id", flat=True))
    return [
        {"text": m.text, "url_contains": m.url_contains, "delay_seconds": m.delay_seconds}
        for m in messages
        if m.segment_id is None or m.segment_id in segments
    ]
