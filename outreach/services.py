"""Outbound email: send from a lead's page, track opens and clicks (with consent), record replies.

- `send_email` stores the timeline entry (an email_sent interaction with the subject and text,
  through leadcrm.services) and an OutboundEmail row in one transaction, and queues the send
  after commit: a slow SMTP server holds up a worker, not the salesperson. The sweep re-sends
  what was queued and never went out.
- Tracking is marketing processing: only for leads with marketing consent is the open pixel
  embedded and are links rewritten; leadcrm.services refuses email_open/email_click otherwise.
- Replies arrive at the inbound endpoint and are matched by the signed token in the Message-ID
  or the Reply-To plus-address (outreach.tokens).
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import logging
import re
from datetime import datetime, timedelta
from email.utils import formataddr, parseaddr
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from config.on_commit import enqueue_now, enqueue_on_commit
from leadcrm import services as crm
from leadcrm.models import Channel, Interaction, Lead, has_nul
from leadcrm.permissions import can_change_lead
from outreach import tokens
from outreach.models import EmailStatus, OutboundEmail

logger = logging.getLogger(__name__)

SUBJECT_MAX = 200
TEXT_MAX = 20_000
REPLY_TEXT_MAX = 20_000
SEND_CLAIM_SECONDS = 300
MAX_SEND_ATTEMPTS = 5
OPEN_ONCE_PER_SECONDS = 60
CLICK_ONCE_PER_SECONDS = 60
URL_RE = re.compile(r"https?://[^\s<>\"'`]+")
TRAILING = ".,;:!?)]}"


def _split_url(match: str) -> tuple[str, str]:
    """A URL at the end of a sentence keeps its full stop outside the link."""
    url = match.rstrip(TRAILING)
    return url, match[len(url) :]


# --- Sending --------------------------------------------------------------------------------------


def send_email(*, lead: Lead, by: User, subject: str, text: str) -> OutboundEmail:
    """Log the email on the lead's timeline and queue it; PermissionDenied / ValidationError."""
    if not can_change_lead(by, lead):
        raise PermissionDenied(
            "Claim this lead before emailing it."
            if lead.owner_id is None
            else "This lead belongs to someone else."
        )
    subject = " ".join((subject or "").split())  # one line: no header injection, no folding tricks
    text = (text or "").replace("\r\n", "\n").strip()
    errors: dict[str, str] = {}
    if not subject:
        errors["subject"] = "Write a subject."
    elif len(subject) > SUBJECT_MAX:
        errors["subject"] = f"Keep the subject under {SUBJECT_MAX} characters."
    if not text:
        errors["text"] = "Write the message."
    elif len(text) > TEXT_MAX:
        errors["text"] = f"Keep the message under {TEXT_MAX} characters."
    if has_nul(subject) or has_nul(text):
        errors["text"] = "Text may not contain the NUL character."
    if not lead.email or lead.erased_at:
        errors["__all__"] = "This lead has no email address. Add one on the lead first."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        interaction = crm.record_interaction(
            lead=lead,
            kind="email_sent",
            channel=Channel.EMAIL,
            payload={"outcome": "email", "direction": "out", "subject": subject, "text": text},
            logged_by=by,
        )
        email = OutboundEmail.objects.create(
            lead=lead, interaction=interaction, sent_by=by, tracked=lead.marketing_consent
        )
        enqueue_on_commit("outreach.tasks.send_email", email.pk)
    return email


def absolute(path: str) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def pixel_url(email_id: int) -> str:
    return absolute(reverse("outreach:open", args=[tokens.open_token(email_id)]))


def click_url(email_id: int, url: str) -> str:
    return absolute(reverse("outreach:click", args=[tokens.click_token(email_id, url)]))


def render_bodies(text: str, *, email_id: int, tracked: bool) -> tuple[str, str]:
    """Plain text and simple HTML of a message; with tracking, links go through signed click URLs
    and the HTML ends with the open pixel."""
    plain: list[str] = []
    rich: list[str] = []
    pos = 0
    for match in URL_RE.finditer(text):
        url, tail = _split_url(match.group(0))
        before = text[pos : match.start()]
        plain.append(before)
        rich.append(html.escape(before))
        href = click_url(email_id, url) if tracked and tokens.is_web_url(url) else url
        plain.append(href + tail)
        rich.append(f'<a href="{html.escape(href)}">{html.escape(url)}</a>{html.escape(tail)}')
        pos = match.end()
    plain.append(text[pos:])
    rich.append(html.escape(text[pos:]))
    body_html = "".join(rich).replace("\n", "<br>\n")
    if tracked:
        body_html += f'\n<img src="{html.escape(pixel_url(email_id))}" width="1" height="1" alt="">'
    return "".join(plain), f"<!doctype html><html><body>\n<div>{body_html}</div>\n</body></html>\n"


def message_id_domain() -> str:
    configured = settings.EMAIL_MESSAGE_ID_DOMAIN
    if configured:
        return configured
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "leadcrm.local"


def reply_address(email_id: int) -> str | None:
    """replies+lc.<id>.<sig>@example.com from EMAIL_REPLY_ADDRESS=replies@example.com; None if unset."""
    address = settings.EMAIL_REPLY_ADDRESS
    if not address or "@" not in address:
        return None
    local, _, domain = address.partition("@")
    return f"{local}+{tokens.reply_token(email_id)}@{domain}"


def build_message(email: OutboundEmail) -> EmailMultiAlternatives:
    payload = email.interaction.payload
    text, body_html = render_bodies(str(payload.get("text", "")), email_id=email.pk, tracked=email.tracked)
    sender = email.sent_by
    name = (sender.get_full_name() or sender.get_username()) if sender else ""
    from_address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1] or settings.DEFAULT_FROM_EMAIL
    reply_to = reply_address(email.pk)
    if reply_to is None and sender is not None and sender.email:
        reply_to = sender.email
    message = EmailMultiAlternatives(
        subject=str(payload.get("subject", "")),
        body=text,
        from_email=formataddr((f"{name} via LeadCRM" if name else "LeadCRM", from_address)),
        to=[email.lead.email or ""],
        reply_to=[reply_to] if reply_to else None,
        headers={"Message-ID": f"<{tokens.reply_token(email.pk)}@{message_id_domain()}>"},
    )
    message.attach_alternative(body_html, "text/html")
    return message


def deliver(email_id: int, *, now: datetime | None = None) -> OutboundEmail | None:
    """Send one queued email once (a task); None when another attempt has it or it is done."""
    now = now or timezone.now()
    claimed = OutboundEmail.objects.filter(
        pk=email_id, status=EmailStatus.QUEUED, next_attempt_at__lte=now
    ).update(next_attempt_at=now + timedelta(seconds=SEND_CLAIM_SECONDS), attempts=F("attempts") + 1)
    if not claimed:
        return None
    email = OutboundEmail.objects.select_related("lead", "interaction", "sent_by").get(pk=email_id)
    if not email.lead.email or email.lead.erased_at:
        email.status, email.error, email.next_attempt_at = (
            EmailStatus.FAILED,
            "The lead has no email address.",
            None,
        )
        email.save(update_fields=["status", "error", "next_attempt_at"])
        return email
    try:
        build_message(email).send(fail_silently=False)
    except Exception as exc:  # SMTP refused, timed out, bad address: retried by the sweep
        email.error = f"Sending failed ({type(exc).__name__}); will retry."[:300]
        if email.attempts >= MAX_SEND_ATTEMPTS:
            email.status, email.next_attempt_at = EmailStatus.FAILED, None
            email.error = f"Sending failed {email.attempts} times ({type(exc).__name__})."
        else:
            email.next_attempt_at = now + timedelta(minutes=2**email.attempts)
        email.save(update_fields=["status", "error", "next_attempt_at"])
        logger.warning("Email %s not sent (%s)", email.pk, type(exc).__name__)
        return email
    email.status, email.sent_at, email.error, email.next_attempt_at = EmailStatus.SENT, now, "", None
    email.save(update_fields=["status", "sent_at", "error", "next_attempt_at"])
    return email


def sweep(*, now: datetime | None = None) -> int:
    """Re-queue emails that are due and were never sent (their task was lost, or a retry)."""
    now = now or timezone.now()
    ids = list(
        OutboundEmail.objects.filter(status=EmailStatus.QUEUED, next_attempt_at__lte=now).values_list(
            "pk", flat=True
        )[:200]
    )
    sent = 0
    for pk in ids:
        if not enqueue_now("outreach.tasks.send_email", pk):
            break
        sent += 1
    return sent


# --- Opens and clicks -----------------------------------------------------------------------------


def record_open(token: str, *, now: datetime | None = None) -> bool:
    """An open of a tracked email, at most once per OPEN_ONCE_PER_SECONDS. Raises BadToken."""
    email_id = tokens.read_open_token(token)
    now = now or timezone.now()
    email = OutboundEmail.objects.filter(pk=email_id, tracked=True).values("lead_id").first()
    if email is None:
        return False
    with transaction.atomic():
        # One conditional UPDATE decides: a burst of pixel loads (mail clients prefetch) counts once.
        fresh = OutboundEmail.objects.filter(
            Q(last_open_at__isnull=True)
            | Q(last_open_at__lte=now - timedelta(seconds=OPEN_ONCE_PER_SECONDS)),
            pk=email_id,
        ).update(last_open_at=now)
        if not fresh:
            return False
        try:
            crm.record_interaction(
                lead=email["lead_id"], kind="email_open", occurred_at=now, payload={"email_id": email_id}
            )
        except ValidationError:  # consent withdrawn since sending: not recorded
            transaction.set_rollback(True)
            return False
    return True


def record_click(token: str, *, now: datetime | None = None) -> str:
    """The target of a signed click link; the click is recorded when the lead agreed to tracking.
    Raises BadToken for a tampered or made-up link (never a redirect then)."""
    email_id, url = tokens.read_click_token(token)
    now = now or timezone.now()
    email = OutboundEmail.objects.filter(pk=email_id, tracked=True).values("lead_id").first()
    digest = hashlib.sha256(f"{email_id} {url}".encode()).hexdigest()[:32]
    if email is not None and cache.add(f"outreach:click:{digest}", 1, CLICK_ONCE_PER_SECONDS):
        # Consent withdrawn since sending: processing that needs it is skipped; the person still gets there.
        with contextlib.suppress(ValidationError):
            crm.record_interaction(
                lead=email["lead_id"],
                kind="email_click",
                occurred_at=now,
                payload={"email_id": email_id, "url": url[:500]},
            )
    return url


def over_ip_limit(ip: str | None, *, now: datetime | None = None) -> bool:
    """Per-IP limit of the public pixel and click endpoints (EMAIL_TRACKING_RATE_PER_MINUTE)."""
    now = now or timezone.now()
    key = f"outreach:ip:{hashlib.sha256((ip or '-').encode()).hexdigest()[:24]}:{int(now.timestamp()) // 60}"
    if cache.add(key, 1, 70):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, 70)
            count = 1
    return count > settings.EMAIL_TRACKING_RATE_PER_MINUTE


# --- Replies --------------------------------------------------------------------------------------


class NoMatch(ValueError):
    """No email LeadCRM sent matches this reply."""


def record_reply(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    in_reply_to: str = "",
    references: str = "",
    message_id: str = "",
    now: datetime | None = None,
) -> tuple[Interaction, bool]:
    """Record a reply as email_reply on the lead of the email it answers; (interaction, new?).

    Matched only by the signed token (In-Reply-To, References, or the plus-address in To); a
    message with a Message-ID is recorded once however often the provider posts it."""
    email_id = tokens.find_reply_email_id(in_reply_to, references, to)
    if email_id is None:
        raise NoMatch(
            "No email sent from LeadCRM matches this reply (no valid token in In-Reply-To, References or To)."
        )
    email = OutboundEmail.objects.filter(pk=email_id).select_related("lead").first()
    if email is None:
        raise NoMatch("The email this reply answers no longer exists.")
    lead = email.lead
    sender_address = parseaddr(sender)[1].lower()
    payload: dict[str, Any] = {
        "email_id": email_id,
        "subject": " ".join(subject.split())[:SUBJECT_MAX],
        "text": text[:REPLY_TEXT_MAX],
        # A forwarded reply or another colleague may answer: shown, not refused.
        "sender_is_lead": bool(lead.email) and sender_address == (lead.email or "").lower(),
    }
    event_id = "email-reply:" + hashlib.sha256(message_id.encode()).hexdigest()[:40] if message_id else ""
    existing = crm.find_event(lead_id=lead.pk, client_event_id=event_id) if event_id else None
    if existing is not None:
        return existing, False
    interaction = crm.record_interaction(
        lead=lead, kind="email_reply", occurred_at=now, payload=payload, client_event_id=event_id
    )
    return interaction, True
