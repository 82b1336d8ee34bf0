"""The conversation flow of the website chat, from the first greeting to the rating.

Starting or resuming a conversation, visitor messages and the bot's turn, hand-off to a person,
the visitor's identity and consent, callbacks, a salesperson taking over and replying, page
views, the "live now" heartbeat, "did that help?" feedback, closing, proactive messages, the
purge of empty anonymous chats, and the transcripts' export and erasure for the privacy app.

Trust: a visitor's only credentials are the conversation token the server issued and, on the
business's own pages, an identity signed with the site's secret (`Site.verify_identity`), or the
one-time code mailed to an address (`chatbot.email_codes`, then `verify_email`). A visitor id is
chosen by the browser and proves nothing; a typed email is a claim, never a login: it never
merges into, changes or reveals an existing lead (a new lead marked `possible_duplicate_of` is
made instead, for a salesperson to check and merge by hand, or merged by `verify_email` once the
visitor typed the code sent to that address).

Opening the widget creates a Conversation without a lead. The lead is made (or an anonymous one
of the same visitor id reused) when the visitor writes, asks for a person or identifies; pages
seen before that wait in `Conversation.pending` and are written as page views then.

Every visitor and agent message is stored as a Message and as a chat_message Interaction on the
lead. Leads and interactions are written through `leadcrm.services` alone (which queues the
rescore after commit); this module writes neither itself. Every change is broadcast through
`chatbot.realtime` after commit: if the channel layer is down the message is still stored and the
widget fetches it when it reconnects. The bot's answers come from `chatbot.faq`; the site's checks
(origin, signed identity, business hours) are methods of `Site`.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from secrets import token_urlsafe
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from chatbot import bot, realtime, waits
from chatbot.faq import best_faq
from chatbot.models import (
    Conversation,
    ConversationStatus,
    EmailCode,
    Message,
    ProactiveMessage,
    SegmentFlow,
    Sender,
    Site,
    VerifiedBy,
)
from chatbot.sentiment import sentiment_score
from chatbot.signals import callback_requested, visitor_identified
from config.on_commit import enqueue_later_on_commit
from leadcrm import routing
from leadcrm import services as crm
from leadcrm.models import (
    ConsentSource,
    FollowUp,
    Interaction,
    InteractionKind,
    Lead,
    LeadSource,
    SegmentMembership,
)
from leadcrm.permissions import is_salesperson
from leadcrm.signals import chat_handed_off

LIVE_FOR = timedelta(minutes=2)
MAX_MESSAGE_CHARS = 1000
MAX_TRAIL = 20
VISITOR_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
TYPED_EMAIL_KEY = "chat_typed_email"  # Lead.custom key: an email typed in the chat that another lead has


# --- Transcripts for the privacy app (export, erasure) ---------------------------------------------


def erase_transcripts(*, lead_ids: Sequence[int]) -> int:
    """Remove the chat transcripts of these leads (set-based): every message and its text, the
    conversations' pages, rating comments, visitor ids and email codes (hashes of the person's
    address); closes them. Returns messages removed."""
    ids = [int(i) for i in lead_ids]
    if not ids:
        return 0
    with transaction.atomic():
        conversations = Conversation.objects.filter(lead_id__in=ids)
        _, per_model = Message.objects.filter(conversation__in=conversations).delete()
        EmailCode.objects.filter(conversation__in=conversations).delete()
        now = timezone.now()
        conversations.update(
            current_url="",
            current_title="",
            visitor_id="",
            rating_comment="",
            pending={},
            status=ConversationStatus.CLOSED,
            closed_at=now,
        )
    return per_model.get(Message._meta.label, 0)


def transcripts_for(lead_id: int) -> list[dict[str, Any]]:
    """A lead's chat transcripts as JSON-able dicts, oldest first (read-only; two queries)."""
    conversations = list(
        Conversation.objects.filter(lead_id=lead_id).select_related("site").order_by("started_at", "id")
    )
    by_conversation: dict[int, list[dict[str, Any]]] = {c.pk: [] for c in conversations}
    messages = Message.objects.filter(conversation__lead_id=lead_id).order_by("id")
    for conversation_id, sender, text, at in messages.values_list(
        "conversation_id", "sender", "text", "created_at"
    ):
        by_conversation[conversation_id].append({"from": sender, "text": text, "at": at.isoformat()})
    return [
        {
            "site": c.site.name,
            "started_at": c.started_at.isoformat(),
            "ended_at": c.closed_at.isoformat() if c.closed_at else None,
            "status": c.status,
            "rating": c.rating,
            "rating_comment": c.rating_comment,
            "messages": by_conversation[c.pk],
        }
        for c in conversations
    ]


# --- Leads ------------------------------------------------------------------------------------------


def _touch_live(lead_id: int | None, now: datetime) -> None:
    if lead_id is not None:
        crm.mark_live(lead_id=lead_id, until=now + LIVE_FOR)


def _valid_timezone(name: str) -> str:
    try:
        bot.ZoneInfo(name)
    except Exception:
        return ""
    return name if name else ""


def _anonymous_lead_of_visitor(visitor_id: str) -> Lead | None:
    """A lead with this visitor id and no identity at all. The id is chosen by the browser, so it
    may only find a lead that has nothing to reveal or protect: no email, phone, name or owner."""
    if not visitor_id:
        return None
    return (
        Lead.objects.filter(
            visitor_id=visitor_id,
            source=LeadSource.CHAT,
            email__isnull=True,
            phone="",
            first_name="",
            last_name="",
            owner__isnull=True,
            contact_consent=False,
            marketing_consent=False,
        )
        .order_by("-id")
        .first()
    )


def _ensure_lead(conversation: Conversation, now: datetime) -> Lead:
    """The conversation's lead; made now if it has none (the visitor wrote, asked or identified).

    Call it with the conversation row locked. A new lead gets the browser's language and zone and
    the pages seen so far (as page-view interactions)."""
    if conversation.lead_id is not None:
        return conversation.lead  # type: ignore[return-value]  # lead_id set: the lead exists
    # The caller's copy may be stale: decide on the locked row, so one chat never makes two leads.
    locked = (
        Conversation.objects.select_for_update(of=("self",)).select_related("lead").get(pk=conversation.pk)
    )
    if locked.lead is not None:
        conversation.lead, conversation.lead_created = locked.lead, locked.lead_created
        return locked.lead
    pending = locked.pending or {}
    lead = _anonymous_lead_of_visitor(conversation.visitor_id)
    if lead is None:
        fields: dict[str, Any] = {
            "preferred_language": str(pending.get("language") or "")[:10],
            "timezone": _valid_timezone(str(pending.get("timezone") or "")),
        }
        lead = crm.create_lead(
            source=LeadSource.CHAT,
            visitor_id=conversation.visitor_id,
            now=now,
            **{k: v for k, v in fields.items() if v},
        )
    conversation.lead = lead
    conversation.lead_created = True
    conversation.pending = {}
    conversation.save(update_fields=["lead", "lead_created", "pending"])
    _lead_known(conversation)
    _record_pages(lead, list(pending.get("pages") or []), now)
    realtime.broadcast_status(conversation, event="started")
    return lead


def _lead_known(conversation: Conversation) -> None:
    # The conversation (its server-issued token) now says which lead this visitor id's browser
    # is: the website tracking links the visitor's earlier events to it (chatbot.signals).
    if conversation.lead_id is not None and conversation.visitor_id:
        visitor_identified.send(
            Conversation,
            site_id=conversation.site_id,
            visitor_id=conversation.visitor_id,
            lead_id=conversation.lead_id,
            conversation_id=conversation.pk,
        )


def _segment_flow(site: Site, lead: Lead) -> SegmentFlow | None:
    segments = SegmentMembership.objects.filter(lead=lead).values("segment_id")
    return SegmentFlow.objects.filter(site=site, segment_id__in=segments).order_by("-priority", "id").first()


def _split_name(name: str) -> tuple[str, str]:
    parts = name.strip().split(None, 1)
    if not parts:
        return "", ""
    return parts[0][:100], (parts[1] if len(parts) > 1 else "")[:100]


def is_identified(conversation: Conversation) -> bool:
    """The visitor proved who they are (signed identity) or their own chat lead has an email (not
    one merely typed that another lead has): they may ask what we know about them, or to erase it."""
    if conversation.identity_verified:
        return True
    lead = conversation.lead
    return lead is not None and conversation.lead_created and bool(lead.email)


# --- Conversations ----------------------------------------------------------------------------------


def _bot_message(conversation: Conversation, text: str, now: datetime, **fields: Any) -> Message:
    return Message.objects.create(
        conversation=conversation, sender=Sender.BOT, text=text, created_at=now, **fields
    )


def _page(page: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    url = str(page.get("url") or "")[:500]
    if not url.startswith(("http://", "https://", "/")):
        return None
    at = page.get("at")
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at)
        except ValueError:
            at = None
    occurred = at if isinstance(at, datetime) and at.tzinfo is not None and at <= now else now
    return {"url": url, "title": str(page.get("title") or "")[:200], "at": occurred.isoformat()}


def _record_pages(lead: Lead, pages: Sequence[dict[str, Any]], now: datetime) -> None:
    for raw in list(pages)[-MAX_TRAIL:]:
        page = _page(raw, now)
        if page is None:
            continue
        crm.record_interaction(
            lead=lead,
            kind="page_view",
            occurred_at=datetime.fromisoformat(page["at"]),
            payload={"url": page["url"], "title": page["title"], "via": "chat_widget"},
        )


def open_conversation(*, site: Site, token: str) -> Conversation | None:
    """The conversation of this site whose token is `token` (compared in constant time), or None."""
    return conversation_by_token(site=site, token=token, open_only=True)


def conversation_by_token(*, site: Site, token: str, open_only: bool = False) -> Conversation | None:
    """The conversation of `site` whose server-issued token is `token`, or None."""
    if not token or len(token) > 64:
        return None
    conversations = Conversation.objects.select_related("lead", "site").filter(site=site, token=token)
    if open_only:
        conversations = conversations.exclude(status=ConversationStatus.CLOSED)
    conversation = conversations.first()
    # The database finds the row by its unique index; the secret itself is then compared in
    # constant time, so no answer depends on how much of a guessed token was right.
    if conversation is None or not hmac.compare_digest(conversation.token.encode(), token.encode()):
        return None
    return conversation


@transaction.atomic
def start_conversation(
    *,
    site: Site,
    visitor_id: str = "",
    token: str = "",
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
    """Resume the open conversation whose server-issued `token` the widget holds, or start one.

    No lead is made here unless the page's identity is verified: a signed identity links to its
    lead (created if new). A token of the visitor's earlier, closed conversation on this site
    carries its lead over (the server issued that token, so it is the same visitor). A visitor id
    alone links to nothing."""
    now = now or timezone.now()
    if not VISITOR_ID_RE.match(visitor_id or ""):
        visitor_id = "v_" + token_urlsafe(16)
    earlier = conversation_by_token(site=site, token=token)
    if earlier is not None and earlier.is_open:
        _touch_live(earlier.lead_id, now)
        if page_url:
            record_page_view(conversation=earlier, url=page_url, title=page_title, now=now)
        return earlier, False

    verified = site.verify_identity(identity_email, identity_signature)
    verified_by: str = VerifiedBy.SIGNATURE if verified else VerifiedBy.NONE
    lead: Lead | None = None
    lead_created = False
    if verified:
        email = identity_email.strip().lower()
        lead = Lead.objects.filter(email__iexact=email).first()
        if lead is None:
            first, last = _split_name(identity_name)
            # Any, as create_lead's **fields: a dict[str, str] could also fill its `now` (a datetime).
            profile: dict[str, Any] = {"preferred_language": language[:10], "timezone": _valid_timezone(tz)}
            lead = crm.create_lead(
                source=LeadSource.CHAT,
                email=email,
                first_name=first,
                last_name=last,
                visitor_id=visitor_id,
                now=now,
                **{k: v for k, v in profile.items() if v},
            )
            lead_created = True
    elif (
        earlier is not None
        and earlier.lead_id is not None
        and (earlier.lead_created or earlier.identity_verified)
        and earlier.lead is not None
        and earlier.lead.erased_at is None  # an erased person's old token carries nothing over
    ):
        lead = earlier.lead
        lead_created = earlier.lead_created  # the same visitor keeps the same rights to that lead
        verified, verified_by = earlier.identity_verified, earlier.verified_by
    conversation = Conversation.objects.create(
        site=site,
        lead=lead,
        lead_created=lead_created,
        visitor_id=visitor_id,
        identity_verified=verified,
        verified_by=verified_by,
        current_url=page_url[:500],
        current_title=page_title[:200],
        started_at=now,
        last_message_at=now,
    )
    _lead_known(conversation)
    # A name is used only with a verified identity or the person's own contact consent.
    name = lead.first_name if lead is not None and (verified or lead.contact_consent) else ""
    flow = _segment_flow(site, lead) if lead is not None else None
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
    if lead is not None:
        _record_pages(lead, pages, now)
        _touch_live(lead.pk, now)
    else:
        kept = [p for p in (_page(page, now) for page in list(pages)[-MAX_TRAIL:]) if p is not None]
        conversation.pending = {"pages": kept, "language": language[:10], "timezone": tz[:64]}
        conversation.save(update_fields=["pending"])
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
    lead_id = conversation.lead_id or _ensure_lead(conversation, now).pk
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
        lead=lead_id,
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
        threshold=site.answer_threshold,
    )
    hit = None if bot.wants_human(text) else best_faq(site, text)
    return bot.reply_to(text, state=state, hit=hit, sentiment=score)


def _bot_turn(conversation: Conversation, reply: bot.Reply, now: datetime) -> list[Message]:
    conversation.unsure_count = reply.unsure_count
    conversation.negative_count = reply.negative_count
    if (reply.interests or reply.city) and conversation.lead is not None:
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


def _has_contact(lead: Lead | None) -> bool:
    if lead is None:
        return False
    return bool(lead.email or lead.phone or lead.custom.get(TYPED_EMAIL_KEY)) and lead.contact_consent


def _handoff(conversation: Conversation, now: datetime) -> list[Message]:
    site = conversation.site
    is_open = site.is_open(now)
    if conversation.handoff_at is None:
        conversation.handoff_at = now
        conversation.save(update_fields=["handoff_at"])
        chat_handed_off.send(
            sender=Conversation,
            lead_id=conversation.lead_id,
            conversation_id=conversation.pk,
            site_id=site.pk,
        )
    # "Talk to a person" is live only when someone is on duty; then the visitor hears the usual
    # wait (chatbot.waits), else a callback or an email is offered instead of waiting unseen.
    live = is_open and waits.live_agents(site, now=now)
    text, actions = bot.handoff_text(
        open_now=is_open,
        opens_at=None if is_open else bot.next_opening(site.business_hours, site.timezone, now),
        has_contact=_has_contact(conversation.lead),
        live=live,
        usual_wait=waits.usual_wait(site, now=now).phrase if live else "",
    )
    if is_open and conversation.status == ConversationStatus.BOT:
        conversation.status = ConversationStatus.WAITING
        _route_waiting(conversation, now)
        realtime.broadcast_status(conversation, event="handoff")
        # Staff pages: badge, title, strip (docs/chat.md#alerts): the routed person's, or everyone's.
        realtime.alert_waiting(conversation, routed_to=conversation.routed_to_id)
    conversation.unsure_count = 0
    return [_bot_message(conversation, text, now, actions=actions)]


def _route_waiting(conversation: Conversation, now: datetime) -> None:
    """A new wait for a person: route it (docs/chat.md#routing), store who and when, and time the
    offer to everyone and the escalation (countdown tasks; the chat-route-waiting sweep too)."""
    routed = routing.route(conversation.lead, now=now)
    conversation.routed_to = routed
    conversation.routed_at = now
    conversation.offered_at = conversation.escalated_at = None
    conversation.save(update_fields=["status", "routed_to", "routed_at", "offered_at", "escalated_at"])
    for delay in sorted({settings.CHAT_OFFER_ALL_AFTER_S, settings.CHAT_ESCALATE_AFTER_S}):
        enqueue_later_on_commit("chatbot.tasks.advance_waiting_chat", conversation.pk, countdown=delay + 0.5)


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
    _ensure_lead(conversation, now)  # a salesperson works on a lead: asking for one makes it
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
    consent_version: str = "",
    now: datetime | None = None,
) -> Lead:
    """Store what the visitor typed on this chat's own lead, and their consent with its wording.

    A typed email is a claim, not a proof: it never touches, merges into or reveals a lead that
    already has it. Such a lead is only pointed at (`possible_duplicate_of`) for a salesperson to
    check; the answer is the same whether the email was known or not. A lead linked by a signed
    identity keeps its email; what the visitor types only fills its blanks."""
    now = now or timezone.now()
    email = (email or "").strip().lower()
    phone = (phone or "").strip()[:40]
    name = (name or "").strip()[:200]
    if not (email or phone or name):
        raise ValidationError({"email": "Give at least your name, email or phone."})
    for field, value in (("name", name), ("email", email), ("phone", phone)):
        if "\x00" in value:
            raise ValidationError({field: "Remove the invisible control character (NUL) and try again."})
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
    site = conversation.site
    if (contact_consent or marketing_consent) and consent_version and consent_version != site.consent_version:
        raise ValidationError(
            {
                "consent_version": "Our consent wording has just changed. Please reload the page and read it again."
            }
        )
    if conversation.lead_id is not None and not (conversation.lead_created or conversation.identity_verified):
        # Not this visitor's to edit (linked some other way): their details go on a lead of their own.
        Conversation.objects.filter(pk=conversation.pk).update(lead=None, lead_created=False, visitor_id="")
        conversation.lead, conversation.lead_created, conversation.visitor_id = None, False, ""
    lead = _ensure_lead(conversation, now)
    first, last = _split_name(name)
    fields: dict[str, Any] = {}
    if conversation.identity_verified:
        # The signed identity decides who this is; typed details only fill blanks.
        if first and not lead.first_name:
            fields.update(first_name=first, last_name=last)
        if phone and not lead.phone:
            fields["phone"] = phone
    else:
        if first:
            fields.update(first_name=first, last_name=last)
        if phone:
            fields["phone"] = phone
        if email and email != (lead.email or ""):
            known = (
                Lead.objects.filter(email__iexact=email)
                .exclude(pk=lead.pk)
                .values_list("pk", flat=True)
                .first()
            )
            if known is None:
                fields["email"] = email
                custom = dict(lead.custom or {})
                if custom.pop(TYPED_EMAIL_KEY, None) is not None:
                    fields["custom"] = custom
                fields["possible_duplicate_of"] = None
            else:
                fields["custom"] = {**(lead.custom or {}), TYPED_EMAIL_KEY: email}
                fields["possible_duplicate_of_id"] = known
    if fields:
        lead = _update_chat_lead(lead, fields, now)
    for purpose, given in (("contact", contact_consent), ("marketing", marketing_consent)):
        if given:
            crm.record_consent(
                lead=lead,
                purpose=purpose,
                granted=True,
                source="widget",
                text=site.consent_wording(purpose),
                text_version=site.consent_version,
                now=now,
            )
    thanks = f"Thanks{', ' + first if first else ''}! We've saved your details."
    actions: list[dict[str, Any]] = []
    if conversation.handoff_at and conversation.status != ConversationStatus.HUMAN:
        open_now = site.is_open(now)
        if not (open_now and waits.live_agents(site, now=now)):  # nobody can answer live
            opens = None if open_now else bot.next_opening(site.business_hours, site.timezone, now)
            actions = bot.follow_up_actions(opens_at=opens, open_now=open_now)
            thanks += " Shall we call you back or email you?"
    message = _bot_message(conversation, thanks, now, actions=actions)
    realtime.broadcast_messages(conversation, [message])
    _touch_live(lead.pk, now)
    return lead


def _update_chat_lead(lead: Lead, fields: dict[str, Any], now: datetime) -> Lead:
    # update_lead knows field names, not "<fk>_id"; the duplicate mark is set by id.
    if "possible_duplicate_of_id" in fields:
        fields["possible_duplicate_of"] = Lead(pk=fields.pop("possible_duplicate_of_id"))
    return crm.update_lead(lead=lead, now=now, **fields)


@transaction.atomic
def verify_email(*, conversation: Conversation, email: str, now: datetime | None = None) -> Lead:
    """The visitor typed the one-time code mailed to `email` (chatbot.email_codes): they read that
    mailbox, which proves the address as the business's signature does. The chat now belongs to
    the lead with that email and is identity_verified (VerifiedBy.EMAIL_CODE); with no such lead,
    the chat's own lead gets the email. A lead this chat made without an email of its own (a
    possible duplicate, or an anonymous lead) is merged into the known lead, so no orphan is left.
    Call it only after the code was checked."""
    now = now or timezone.now()
    email = email.strip().lower()
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("lead", "site")
        .get(pk=conversation.pk)
    )
    lead_before = conversation.lead_id
    own = conversation.lead if conversation.lead_created else None
    known = Lead.objects.filter(email__iexact=email).first()
    if known is not None:
        if own is not None and own.pk != known.pk and own.email is None:
            _merge_into_verified(own, known, now)
        if conversation.lead_id is None:  # pages seen before there was a lead: on the known one
            _record_pages(known, list((conversation.pending or {}).get("pages") or []), now)
            conversation.pending = {}
        if conversation.lead_id != known.pk:
            conversation.lead, conversation.lead_created = known, False
        lead = known
    else:
        if conversation.lead_id is not None and own is None:
            # Linked some other way (not this visitor's to edit): the address goes on a lead of their own.
            Conversation.objects.filter(pk=conversation.pk).update(lead=None, visitor_id="")
            conversation.lead, conversation.visitor_id = None, ""
        lead = _ensure_lead(conversation, now)  # sends visitor_identified if it makes the lead
        custom = dict(lead.custom or {})
        changes: dict[str, Any] = {"email": email, "possible_duplicate_of": None}
        if custom.pop(TYPED_EMAIL_KEY, None) is not None:
            changes["custom"] = custom
        if lead.email != email or lead.possible_duplicate_of_id is not None or "custom" in changes:
            lead = crm.update_lead(lead=lead, now=now, **changes)
        lead_before = conversation.lead_id
    conversation.identity_verified = True
    conversation.verified_by = VerifiedBy.EMAIL_CODE
    conversation.save(
        update_fields=["lead", "lead_created", "visitor_id", "pending", "identity_verified", "verified_by"]
    )
    if conversation.lead_id != lead_before:
        _lead_known(conversation)
    message = _bot_message(conversation, "Thanks! Your email address is confirmed.", now)
    realtime.broadcast_messages(conversation, [message])
    realtime.broadcast_status(conversation, event="verified")
    _touch_live(lead.pk, now)
    return lead


def _merge_into_verified(own: Lead, known: Lead, now: datetime) -> None:
    """This chat's own lead is the verified person: as with a signed identity, what they typed
    fills the known lead's blanks and the consents they gave in the chat are recorded on it (unless
    it has a newer answer); then its chats move over and it is merged (interactions, follow-ups)."""
    fields: dict[str, Any] = {}
    if own.first_name and not known.first_name:
        fields.update(first_name=own.first_name, last_name=own.last_name)
    if own.phone and not known.phone:
        fields["phone"] = own.phone
    if fields:
        crm.update_lead(lead=known, now=now, **fields)
    for consent in own.consents.filter(granted=True, source=ConsentSource.WIDGET).order_by(
        "recorded_at", "id"
    ):
        if not known.consents.filter(purpose=consent.purpose, recorded_at__gte=consent.recorded_at).exists():
            crm.record_consent(
                lead=known,
                purpose=consent.purpose,
                granted=True,
                source=ConsentSource.WIDGET,
                text=consent.text,
                text_version=consent.text_version,
                now=consent.recorded_at,
            )
    # Chats first, so deleting the merged lead does not take them with it.
    Conversation.objects.filter(lead=own).update(lead=known, lead_created=False)
    crm.merge_same_person(duplicate=own, into=known)


@transaction.atomic
def schedule_callback(
    *,
    conversation: Conversation,
    due_at: datetime,
    note: str = "",
    via: str = "phone",
    now: datetime | None = None,
) -> FollowUp:
    """Out of hours (or instead of waiting): a follow-up for the owner (or the site's handoff
    person) to call the visitor back (`via="phone"`) or to email them (`via="email"`). One open
    chat promise per lead: asking again moves it (new time, new channel), never adds another."""
    now = now or timezone.now()
    if via not in PROMISE_NOTES:
        raise ValidationError({"via": "Choose phone or email."})
    # Locked: two quick clicks must not make two promises (the check below would race).
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("lead", "site")
        .get(pk=conversation.pk)
    )
    lead = conversation.lead
    if via == "email" and (
        lead is None or not _has_contact(lead) or not (lead.email or lead.custom.get(TYPED_EMAIL_KEY))
    ):
        raise ValidationError(
            {"contact": "Leave your email address (and your consent) first, so we can write to you."}
        )
    if lead is None or not _has_contact(lead):
        raise ValidationError(
            {"contact": "Leave your email or phone (and your consent) first, so we can call you."}
        )
    promise_note = f"{PROMISE_NOTES[via]} requested on {conversation.site.name}. {note}".strip()[:1000]
    if due_at <= now - timedelta(minutes=1) or due_at > now + timedelta(days=14):
        raise ValidationError({"due_at": "Pick a time within the next two weeks."})
    existing = FollowUp.objects.filter(
        Q(note__startswith=PROMISE_NOTES["phone"]) | Q(note__startswith=PROMISE_NOTES["email"]),
        lead=lead,
        done_at__isnull=True,
    ).first()
    if existing is not None:
        changes: dict[str, Any] = {"due_at": due_at, "note": promise_note}
        if existing.assigned_to is None or not existing.assigned_to.is_active:
            changes["assigned_to"] = routing.promise_owner(
                lead, now=now, fallback=conversation.site.handoff_owner
            )
        follow_up = crm.update_follow_up(follow_up=existing, changes=changes, now=now)
    else:
        follow_up = crm.add_follow_up(
            lead=lead,
            due_at=due_at,
            note=promise_note,
            # The routing rule's promise branch (docs/chat.md#routing): the lead's owner, else
            # someone on duty, else the site's hand-off person, else a manager. Never nobody.
            assigned_to=routing.promise_owner(lead, now=now, fallback=conversation.site.handoff_owner),
            now=now,
        )
        # A new callback request: the follow-up sequences may enrol the lead (chatbot.signals).
        callback_requested.send(
            sender=Conversation, lead_id=lead.pk, conversation_id=conversation.pk, follow_up_id=follow_up.pk
        )
    local = due_at.astimezone(bot.ZoneInfo(conversation.site.timezone))
    if due_at <= now + ASAP:
        when = "as soon as someone is free"
    else:
        when = f"when we open ({bot.format_opening(local)})" if via == "email" else bot.format_opening(local)
    # When, and who (the promise's owner: the same name the visitor sees when someone joins).
    owner = follow_up.assigned_to
    who = f"{owner.first_name or owner.username} from our team" if owner is not None else "we"
    done = f"{who} will email you" if via == "email" else f"{who} will call you back"
    message = _bot_message(conversation, f"Done: {done} {when}.", now)
    realtime.broadcast_messages(conversation, [message])
    return follow_up


# The note that marks a chat's promise (one open per lead), by channel; see schedule_callback.
PROMISE_NOTES = {"phone": "Chat callback", "email": "Chat email follow-up"}
ASAP = timedelta(minutes=5)  # a promise due within this is "as soon as someone is free"
NO_OPENING_DUE = timedelta(days=1)  # a site with no business hours at all: due by tomorrow


def request_follow_up(*, conversation: Conversation, via: str, now: datetime | None = None) -> FollowUp:
    """The visitor would rather not wait: a callback or an email follow-up, due now while open
    (someone on duty takes it, or it escalates), else at the next opening. The time is the
    server's choice, never the visitor's."""
    now = now or timezone.now()
    site = conversation.site
    if site.is_open(now):
        due_at = now
    else:
        due_at = bot.next_opening(site.business_hours, site.timezone, now) or now + NO_OPENING_DUE
    return schedule_callback(conversation=conversation, due_at=due_at, via=via, now=now)


@transaction.atomic
def take_over(*, conversation: Conversation, user: User, now: datetime | None = None) -> Conversation:
    """A salesperson takes the chat from the bot (claims an unassigned lead); the visitor is told."""
    now = now or timezone.now()
    conversation = (
        Conversation.objects.select_for_update(of=("self",)).select_related("lead").get(pk=conversation.pk)
    )
    if conversation.status == ConversationStatus.HUMAN and conversation.agent_id == user.pk:
        return conversation
    lead = _ensure_lead(conversation, now)
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
    realtime.alert_taken(conversation)
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
        lead=_ensure_lead(conversation, now).pk,
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
    locked = Conversation.objects.select_for_update(of=("self",)).get(pk=conversation.pk)
    if locked.lead_id is not None:
        crm.record_interaction(
            lead=locked.lead_id,
            kind="page_view",
            occurred_at=now,
            payload={"url": url, "title": title, "via": "chat_widget"},
        )
    else:  # no lead yet: kept on the conversation, written as page views when the lead is made
        pending = dict(locked.pending or {})
        pages = [*list(pending.get("pages") or []), {"url": url, "title": title, "at": now.isoformat()}]
        pending["pages"] = pages[-MAX_TRAIL:]
        locked.pending = pending
    locked.current_url, locked.current_title = url, title
    locked.save(update_fields=["pending", "current_url", "current_title"])
    conversation = locked
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
        actions=[*bot.DECLINE_ACTIONS],
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
    if conversation.lead_id is not None:
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


# --- Purge of empty anonymous chats ----------------------------------------------------------------

PURGE_BATCH = 1000


def empty_conversations(*, older_than: datetime) -> Any:
    """Conversations nobody wrote in (no visitor or agent message), with no verified identity and
    no identity on their lead, and quiet since before `older_than`."""
    spoken = Message.objects.filter(conversation=OuterRef("pk"), sender__in=[Sender.VISITOR, Sender.AGENT])
    return (
        Conversation.objects.filter(last_message_at__lt=older_than, identity_verified=False)
        .exclude(Exists(spoken))
        .filter(
            Q(lead__isnull=True)
            | Q(lead__email__isnull=True, lead__phone="", lead__first_name="", lead__last_name="")
        )
    )


def purge_empty_conversations(*, older_than: timedelta, now: datetime | None = None) -> tuple[int, int]:
    """Delete empty anonymous conversations older than `older_than`, and the leads they made that
    have nothing else (no other conversation, no owner). Set-based, in batches. Returns
    (conversations, leads) deleted."""
    now = now or timezone.now()
    conversations_deleted = leads_deleted = 0
    while True:
        with transaction.atomic():
            batch = list(
                empty_conversations(older_than=now - older_than).values_list("pk", flat=True)[:PURGE_BATCH]
            )
            if not batch:
                break
            others = Conversation.objects.filter(lead=OuterRef("pk")).exclude(pk__in=batch)
            lead_ids = list(
                Lead.objects.filter(
                    conversations__pk__in=batch,
                    conversations__lead_created=True,
                    source=LeadSource.CHAT,
                    owner__isnull=True,
                    email__isnull=True,
                    phone="",
                )
                .exclude(Exists(others))
                .values_list("pk", flat=True)
                .distinct()
            )
            Message.objects.filter(conversation_id__in=batch).delete()
            conversations_deleted += (
                Conversation.objects.filter(pk__in=batch).delete()[1].get(Conversation._meta.label, 0)
            )
            leads_deleted += crm.delete_leads(lead_ids=lead_ids)
        if len(batch) < PURGE_BATCH:
            break
    return conversations_deleted, leads_deleted


@transaction.atomic
def merge_duplicate(*, duplicate: Lead, by: User) -> Lead:
    """A salesperson confirmed that a lead marked `possible_duplicate_of` is that known person:
    its chats, interactions and follow-ups move over, and it is deleted (leadcrm decides who may)."""
    target_id = duplicate.possible_duplicate_of_id
    if target_id is None:
        raise ValidationError("This lead is not marked as a possible duplicate.")
    # Chats first, so deleting the duplicate does not take them with it; a refusal below rolls back.
    Conversation.objects.filter(lead=duplicate).update(lead_id=target_id, lead_created=False)
    return crm.merge_possible_duplicate(duplicate=duplicate, by=by)


NOTE_LIMIT = 2000


@transaction.atomic
def add_internal_note(
    *, conversation: Conversation, user: User, text: str, now: datetime | None = None
) -> Any:
    """A note on a chat for the team only: stored as a note interaction on the lead (through the CRM
    service), shown in the agent panel's message list; never a Message, never broadcast to the
    widget's group, so the visitor cannot receive it."""
    now = now or timezone.now()
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": "Write the note first."})
    if len(text) > NOTE_LIMIT:
        raise ValidationError({"text": f"Notes are limited to {NOTE_LIMIT} characters."})
    if conversation.lead_id is None:
        raise ValidationError({"text": "This chat has no lead yet to note anything on."})
    return crm.record_interaction(
        lead=conversation.lead_id,
        kind="note",
        occurred_at=now,
        payload={"text": text, "conversation_id": conversation.pk, "internal": True},
        logged_by=user,
    )


def internal_notes(conversation: Conversation) -> list[Any]:
    """The team's notes on this chat, oldest first (Interaction rows)."""
    if conversation.lead_id is None:
        return []
    return list(
        Interaction.objects.filter(
            lead_id=conversation.lead_id,
            kind=InteractionKind.NOTE,
            payload__conversation_id=conversation.pk,
        )
        .select_related("logged_by")
        .order_by("occurred_at", "id")[:200]
    )
