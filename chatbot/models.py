"""Website chat: a Site per business website, its FAQ and proactive messages, and conversations.

Every visitor/bot/agent message is also stored as a CHAT_MESSAGE Interaction on the lead (that is
what moves the score); `Message` keeps the conversation's own view: order, sender, FAQ match,
"did that help?" feedback, and the client id that makes resending after a network drop safe.

A Site answers its own checks: which origins may embed the widget (`allows_origin`), whether a
visitor identity signed by the business's server is genuine (`verify_identity`), and whether the
team is in at a given moment (`is_open`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zoneinfo
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.timezone import now as utc_now

from chatbot import bot
from leadcrm.models import Lead, Segment

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIME_OF_DAY = ("morning", "afternoon", "evening", "night")


def new_public_key() -> str:
    return "pk_" + secrets.token_urlsafe(18)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_conversation_token() -> str:
    return secrets.token_urlsafe(24)


def default_business_hours() -> dict:
    return {day: [["09:00", "17:00"]] for day in WEEKDAYS[:5]}


def default_greetings() -> dict:
    return {
        "morning": "Good morning{name}! How can we help?",
        "afternoon": "Good afternoon{name}! How can we help?",
        "evening": "Good evening{name}! How can we help?",
        "night": "Hello{name}! We're offline right now, but I can answer common questions.",
    }


DEFAULT_CONSENT_TEXT = (
    "I agree that {name} stores these details to answer me and contact me about my request."
)
DEFAULT_MARKETING_TEXT = "Also send me news and offers (optional)."


def validate_business_hours(value: object) -> None:
    """{"mon": [["09:00", "17:00"]], ...}; days missing or empty are closed."""
    if not isinstance(value, dict):
        raise ValidationError('Business hours must be an object like {"mon": [["09:00", "17:00"]]}.')
    for day, spans in value.items():
        if day not in WEEKDAYS:
            raise ValidationError(f"Unknown day {day!r}; use {', '.join(WEEKDAYS)}.")
        if not isinstance(spans, list):
            raise ValidationError(f"{day}: give a list of [start, end] pairs.")
        for span in spans:
            if not (isinstance(span, list | tuple) and len(span) == 2):
                raise ValidationError(f"{day}: each span is [start, end], e.g. ['09:00', '17:00'].")
            try:
                start, end = (_parse_hhmm(s) for s in span)
            except ValueError:
                raise ValidationError(f"{day}: times are HH:MM, e.g. 09:00.") from None
            if start >= end and end != 0:
                raise ValidationError(f"{day}: a span must end after it starts ({span[0]}–{span[1]}).")


def _parse_hhmm(text: str) -> int:
    hours, minutes = str(text).split(":")
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise ValueError(text)
    return h * 60 + m


def validate_greetings(value: object) -> None:
    if not isinstance(value, dict) or not set(value) <= set(TIME_OF_DAY):
        raise ValidationError(f"Greetings are an object with keys among: {', '.join(TIME_OF_DAY)}.")


def validate_origins(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(o, str) and "://" in o for o in value):
        raise ValidationError('Allowed origins are a list like ["https://www.example.com"].')


def normalise_origin(origin: str) -> str:
    """`origin` as compared with a site's allowed origins: trimmed, no trailing slash, lower case."""
    return origin.strip().rstrip("/").lower()


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"Unknown time zone {value!r}; use an IANA name like Europe/Berlin.") from None


class Site(models.Model):
    name = models.CharField(max_length=120)
    public_key = models.CharField(max_length=40, unique=True, default=new_public_key)
    identity_secret = models.CharField(
        max_length=64,
        default=new_secret,
        help_text="Signs visitor emails (HMAC-SHA256) so the bot may greet them by the page's name.",
    )
    allowed_origins = models.JSONField(default=list, validators=[validate_origins], blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    business_hours = models.JSONField(default=default_business_hours, validators=[validate_business_hours])
    greetings = models.JSONField(default=default_greetings, validators=[validate_greetings])
    brand_color = models.CharField(max_length=7, default="#1f5fbf")
    privacy_url = models.URLField(blank=True)
    privacy_text = models.TextField(blank=True, help_text="Shown when there is no privacy URL.")
    # The consent wording the widget shows next to its checkboxes; recorded word for word (with
    # its version) on the lead's consent history when a visitor ticks them. {name} = site name.
    consent_text = models.TextField(
        default=DEFAULT_CONSENT_TEXT, help_text="Contact consent wording; {name} is the site's name."
    )
    marketing_consent_text = models.TextField(default=DEFAULT_MARKETING_TEXT)
    consent_version = models.CharField(
        max_length=50, default="1", help_text="Change it whenever you change either wording."
    )
    faq_threshold = models.FloatField(
        default=0.35,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Manager override: below this match confidence the bot says it is not sure. "
        "Used when the calibrated threshold is off (or not computed yet).",
    )
    # The threshold chosen on the site's own FAQ (held-out questions, chatbot.intents.calibrate),
    # recomputed after every FAQ change; a manager may switch it off and set faq_threshold.
    faq_threshold_auto = models.BooleanField(
        default=True, help_text="Use the threshold calibrated on this site's FAQ instead of the override."
    )
    faq_threshold_calibrated = models.FloatField(null=True, blank=True, editable=False)
    faq_calibration = models.JSONField(default=dict, blank=True, editable=False)
    negative_messages_for_handoff = models.PositiveSmallIntegerField(
        default=2, help_text="Negative visitor messages in one conversation before a person is offered."
    )
    callback_offer_after_s = models.PositiveIntegerField(
        default=120,
        validators=[MinValueValidator(15), MaxValueValidator(3600)],
        help_text="Seconds a visitor waits for a person before the widget offers a callback or an email instead.",
    )
    handoff_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Gets out-of-hours callbacks for unassigned leads.",
    )
    created_at = models.DateTimeField(default=utc_now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        color = self.brand_color or ""
        if not (
            len(color) == 7
            and color.startswith("#")
            and all(c in "0123456789abcdefABCDEF" for c in color[1:])
        ):
            raise ValidationError({"brand_color": "Use a hex colour like #1f5fbf."})

    def allows_origin(self, origin: str | None) -> bool:
        """True if `origin` (scheme://host[:port]) is one of the site's allowed origins."""
        if not origin:
            return False
        return normalise_origin(origin) in {normalise_origin(o) for o in self.allowed_origins}

    def identity_signature(self, email: str) -> str:
        """What the business's server puts next to the visitor's email: HMAC-SHA256 hex of the email."""
        return hmac.new(
            self.identity_secret.encode(), email.strip().lower().encode(), hashlib.sha256
        ).hexdigest()

    def verify_identity(self, email: str, signature: str) -> bool:
        """True if `signature` is this site's signature of `email` (compared in constant time)."""
        if not (email and signature):
            return False
        # Bytes: compare_digest refuses non-ASCII str, and a made-up signature must not be a 500.
        return hmac.compare_digest(
            self.identity_signature(email).encode(), signature.strip().lower().encode()
        )

    def is_open(self, now: datetime) -> bool:
        """True if `now` falls within the site's business hours, in the site's time zone."""
        return bot.is_open(self.business_hours, self.timezone, now)

    @property
    def answer_threshold(self) -> float:
        """The confidence the bot needs to answer from the FAQ: calibrated, unless overridden."""
        if self.faq_threshold_auto and self.faq_threshold_calibrated is not None:
            return self.faq_threshold_calibrated
        return self.faq_threshold

    def consent_wording(self, purpose: str) -> str:
        """The exact consent sentence the widget shows for `purpose` ("contact" or "marketing")."""
        if purpose == "marketing":
            return self.marketing_consent_text
        return self.consent_text.replace("{name}", self.name)


class FaqEntry(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="faq_entries")
    question = models.CharField(max_length=300)
    variants = models.TextField(blank=True, help_text="Other ways visitors ask this, one per line.")
    answer = models.TextField()
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["site", "id"]
        verbose_name = "FAQ entry"
        verbose_name_plural = "FAQ entries"

    def __str__(self) -> str:
        return self.question

    @property
    def all_questions(self) -> list[str]:
        return [self.question, *(v.strip() for v in self.variants.splitlines() if v.strip())]


class ProactiveMessage(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="proactive_messages")
    text = models.CharField(max_length=300)
    url_contains = models.CharField(
        max_length=200, blank=True, help_text="Show on pages whose URL contains this; blank = all pages."
    )
    delay_seconds = models.PositiveIntegerField(default=10, help_text="Time on page before it shows.")
    segment = models.ForeignKey(
        Segment, null=True, blank=True, on_delete=models.CASCADE, help_text="Only for visitors in it."
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["site", "delay_seconds", "id"]

    def __str__(self) -> str:
        return self.text[:60]


class SegmentFlow(models.Model):
    """What a visitor in a segment gets instead of the default: their own greeting and offer."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="segment_flows")
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="chat_flows")
    greeting = models.CharField(max_length=300, blank=True, help_text="{name} is replaced. Blank: default.")
    offer = models.CharField(max_length=300, blank=True)
    priority = models.IntegerField(default=0, help_text="Highest wins when a visitor is in several.")

    class Meta:
        ordering = ["-priority", "id"]
        constraints = [models.UniqueConstraint(fields=["site", "segment"], name="segment_flow_unique")]

    def __str__(self) -> str:
        return f"{self.site}: {self.segment}"


class ConversationStatus(models.TextChoices):
    BOT = "bot", "With the bot"
    WAITING = "waiting", "Waiting for a person"
    HUMAN = "human", "With a person"
    CLOSED = "closed", "Closed"


class VerifiedBy(models.TextChoices):
    """How a conversation's visitor proved who they are (Conversation.identity_verified)."""

    NONE = "", "Not verified"
    SIGNATURE = "signature", "Signed identity"  # the business's page signed the email (HMAC)
    EMAIL_CODE = "email_code", "Email code"  # the visitor typed a one-time code sent to the address


class Conversation(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="conversations")
    # No lead until the visitor writes, asks for a person or identifies: opening the widget is free.
    lead = models.ForeignKey(
        Lead, null=True, blank=True, on_delete=models.CASCADE, related_name="conversations"
    )
    # This conversation created its lead (so a purge of empty chats may delete it with it).
    lead_created = models.BooleanField(default=False)
    # The visitor's credential for this conversation, issued by the server; sent in the
    # X-Chat-Token header, never in a URL.
    token = models.CharField(max_length=40, unique=True, default=new_conversation_token)
    visitor_id = models.CharField(max_length=64, blank=True, db_index=True)
    # What the browser told us before there was a lead ({"pages": [...], "language": …,
    # "timezone": …}): written on the lead (pages as page-view interactions) when it is made.
    pending = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=10, choices=ConversationStatus.choices, default=ConversationStatus.BOT
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="chats"
    )
    identity_verified = models.BooleanField(default=False)
    verified_by = models.CharField(max_length=12, choices=VerifiedBy.choices, blank=True, default="")
    # The bot's small memory: "not sure" once → ask to rephrase; twice → offer a person.
    unsure_count = models.PositiveSmallIntegerField(default=0)
    negative_count = models.PositiveSmallIntegerField(default=0)
    current_url = models.CharField(max_length=500, blank=True)
    current_title = models.CharField(max_length=200, blank=True)
    rating = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    rating_comment = models.TextField(blank=True)
    started_at = models.DateTimeField(default=utc_now)
    last_message_at = models.DateTimeField(default=utc_now)
    handoff_at = models.DateTimeField(null=True, blank=True)
    # Routing (leadcrm.routing, docs/chat.md#routing): who a chat waiting for a person was given to
    # and when it started waiting; when nobody had answered it was offered to everyone on duty
    # (CHAT_OFFER_ALL_AFTER_S) and escalated to the managers (CHAT_ESCALATE_AFTER_S). Each step
    # fires once per wait; a new hand-off starts a new wait.
    routed_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    routed_at = models.DateTimeField(null=True, blank=True)
    offered_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_message_at"]
        indexes = [
            models.Index(fields=["site", "visitor_id", "status"], name="conversation_visitor_idx"),
            models.Index(fields=["lead", "-last_message_at"], name="conversation_lead_idx"),
            # The routing sweep: chats waiting for a person, by when they started waiting.
            models.Index(
                fields=["routed_at"], name="conversation_waiting_idx", condition=Q(status="waiting")
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | (Q(rating__gte=1) & Q(rating__lte=5)),
                name="conversation_rating_1_5",
            )
        ]

    def __str__(self) -> str:
        return f"Chat {self.pk} on {self.site_id} with lead {self.lead_id or '(none yet)'}"

    @property
    def is_open(self) -> bool:
        return self.status != ConversationStatus.CLOSED


class Sender(models.TextChoices):
    VISITOR = "visitor", "Visitor"
    BOT = "bot", "Bot"
    AGENT = "agent", "Agent"


class Resolution(models.TextChoices):
    """What a manager did with a question the bot could not answer."""

    OPEN = "", "Open"
    NEW_ENTRY = "entry", "Added as a new FAQ entry"
    VARIANT = "variant", "Added as a variant of an FAQ entry"
    DISMISSED = "dismissed", "Dismissed"


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    sender = models.CharField(max_length=8, choices=Sender.choices)
    text = models.TextField()
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    client_id = models.CharField(max_length=40, blank=True, help_text="Makes a resend after a drop a no-op.")
    sentiment = models.FloatField(null=True, blank=True)
    # Bot answers: which FAQ, how sure; visitor questions the bot could not answer are flagged.
    faq = models.ForeignKey(FaqEntry, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    confidence = models.FloatField(null=True, blank=True)
    unanswered = models.BooleanField(default=False)
    helpful = models.BooleanField(null=True, blank=True, help_text="Visitor's 'did that help?' answer.")
    actions = models.JSONField(default=list, blank=True, help_text="Quick replies the widget shows.")
    # An unanswered visitor question, once a manager dealt with it (the unanswered-questions list).
    resolution = models.CharField(max_length=10, choices=Resolution.choices, blank=True, default="")
    resolved_faq = models.ForeignKey(
        FaqEntry, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=utc_now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=~Q(client_id=""),
                name="message_client_id_unique",
            )
        ]
        indexes = [
            models.Index(
                fields=["unanswered", "created_at"],
                name="message_unanswered_idx",
                condition=Q(unanswered=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.sender}: {self.text[:50]}"


class EmailCode(models.Model):
    """A one-time code mailed to an address a chat visitor says is theirs (chatbot.email_codes).

    Neither the code nor the address is stored: only keyed hashes (HMAC with a key derived from
    SECRET_KEY). The code's hash also covers the conversation and the address, so a code is good
    for that chat and that address only. Five wrong tries void it; it expires; it works once.
    Expired rows are deleted by the chat-purge-empty task, and a person's erasure deletes theirs."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="email_codes")
    email_hash = models.CharField(max_length=64)
    code_hash = models.CharField(max_length=64)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Wrong codes typed so far.")
    created_at = models.DateTimeField(default=utc_now)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "email verification code"
        indexes = [models.Index(fields=["conversation", "email_hash"], name="email_code_conversation_idx")]

    def __str__(self) -> str:
        return f"Email code {self.pk} of chat {self.conversation_id}"
