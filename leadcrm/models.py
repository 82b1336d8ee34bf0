"""The CRM core: leads, their interactions, segments and follow-ups.

Score fields live on Lead so that the outreacher's queue is one indexed query; the scoring apps
fill them. Interaction.kind is a small integer because scoring groups on it across tens of
millions of rows.
"""

from __future__ import annotations

import math
import zoneinfo
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.timezone import now as utc_now

from leadcrm.permissions import is_manager, is_salesperson


class LeadSource(models.TextChoices):
    WEB_FORM = "web_form", "Web form"
    CHAT = "chat", "Chat"
    IMPORT = "import", "Import"
    REFERRAL = "referral", "Referral"
    EVENT = "event", "Event"
    PAID_ADS = "paid_ads", "Paid ads"
    ORGANIC_SEARCH = "organic_search", "Organic search"
    SOCIAL = "social", "Social"
    EMAIL_CAMPAIGN = "email_campaign", "Email campaign"
    PURCHASED_LIST = "purchased_list", "Purchased list"
    OTHER = "other", "Other"


class LeadStatus(models.TextChoices):
    NEW = "new", "New"
    WORKING = "working", "Working"
    QUALIFIED = "qualified", "Qualified"
    WON = "won", "Won"
    LOST = "lost", "Lost"
    DISQUALIFIED = "disqualified", "Disqualified"


CLOSED_STATUSES = (LeadStatus.WON, LeadStatus.LOST, LeadStatus.DISQUALIFIED)


class RevenueBand(models.TextChoices):
    UNDER_1M = "lt_1m", "Under $1M"
    FROM_1M_TO_10M = "1m_10m", "$1M–$10M"
    FROM_10M_TO_50M = "10m_50m", "$10M–$50M"
    FROM_50M_TO_250M = "50m_250m", "$50M–$250M"
    OVER_250M = "gt_250m", "Over $250M"


# Lead's score fields: written by the scoring app's store only (docs/architecture.md, rule 5);
# read-only everywhere else (the admin, the API, the services).
SCORE_FIELDS = (
    "rule_score",
    "fit_score",
    "engagement_score",
    "grade",
    "score_breakdown",
    "ml_probability",
    "ml_factors",
    "priority",
    "scored_at",
)


# The same answer whoever holds the email: a salesperson must not learn that a colleague has the lead.
EMAIL_UNAVAILABLE = (
    "This email can't be used for this lead. If you think the person is already in LeadCRM, ask a manager."
)
NUL_MESSAGE = "Text may not contain the NUL character (\\u0000)."
EARLIEST_INTERACTION = datetime(1970, 1, 1, tzinfo=UTC)


def has_nul(value: Any) -> bool:
    """Whether a JSON value holds a NUL character in any string or key (PostgreSQL refuses those)."""
    stack = [value]
    while stack:  # a loop, not recursion: any depth is walked without overflowing the stack
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


MAX_JSON_DEPTH = 32  # custom attributes and payloads are flat in practice


def nests_deeper(value: Any, max_depth: int) -> bool:
    """Whether JSON nests deeper than `max_depth`: a loop, not recursion, so a body nested
    thousands of levels deep is refused rather than overflow the stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return True
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return False


def json_problem(value: Any) -> str | None:
    """Why PostgreSQL could not store this JSON exactly (None: it can)."""
    if nests_deeper(value, MAX_JSON_DEPTH):
        return f"Nest values at most {MAX_JSON_DEPTH} levels deep."
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)  # the keys are text too
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return NUL_MESSAGE
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate half, e.g. "\\ud800" in the JSON
                return "Text must be valid Unicode: a lone surrogate such as \\ud800 is no character."
        elif isinstance(item, float) and not math.isfinite(item):
            return "Numbers must be finite (no NaN or Infinity)."
    return None


class LeadQuerySet(models.QuerySet["Lead"]):
    def visible_to(self, user) -> LeadQuerySet:
        """The one rule of who sees which leads.

        Managers (and superusers) see every lead. A salesperson sees the leads they own and the
        unassigned ones they could claim; other salespeople's leads are hidden.
        """
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if is_manager(user):
            return self
        if is_salesperson(user):
            return self.filter(Q(owner=user) | Q(owner__isnull=True))
        return self.none()

    def open(self) -> LeadQuerySet:
        return self.exclude(status__in=CLOSED_STATUSES)

    def live_now(self, now=None) -> LeadQuerySet:
        return self.filter(live_until__gt=now or utc_now())

    def not_erased(self) -> LeadQuerySet:
        return self.filter(erased_at__isnull=True)


class Lead(models.Model):
    # Identity
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(max_length=254, null=True, blank=True, help_text="Unique where present.")
    phone = models.CharField(max_length=40, blank=True)
    # Company
    company_name = models.CharField(max_length=200, blank=True)
    industry = models.CharField(max_length=100, blank=True)
    employee_count = models.IntegerField(null=True, blank=True, validators=[MinValueValidator(0)])
    annual_revenue_band = models.CharField(max_length=10, choices=RevenueBand.choices, blank=True)
    job_title = models.CharField(max_length=150, blank=True)
    # Place and language
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2 code, e.g. DE.")
    city = models.CharField(max_length=100, blank=True)
    timezone = models.CharField(max_length=64, blank=True, help_text="IANA name, e.g. Europe/Berlin.")
    preferred_language = models.CharField(max_length=10, blank=True, help_text="e.g. en, de, pt-BR.")
    # Where they came from
    source = models.CharField(max_length=20, choices=LeadSource.choices, default=LeadSource.OTHER)
    utm_source = models.CharField(max_length=100, blank=True)
    utm_medium = models.CharField(max_length=100, blank=True)
    utm_campaign = models.CharField(max_length=100, blank=True)
    utm_term = models.CharField(max_length=100, blank=True)
    utm_content = models.CharField(max_length=100, blank=True)
    # Lifecycle
    status = models.CharField(max_length=20, choices=LeadStatus.choices, default=LeadStatus.NEW)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    qualified_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was won, lost or disqualified."
    )
    lost_reason = models.CharField(max_length=200, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="leads"
    )
    # Consent (GDPR-style: what they agreed to, and when)
    marketing_consent = models.BooleanField(default=False)
    marketing_consent_at = models.DateTimeField(null=True, blank=True)
    contact_consent = models.BooleanField(
        default=False, help_text="Agreed to be contacted about their request."
    )
    contact_consent_at = models.DateTimeField(null=True, blank=True)
    # Free-form attributes: imported spreadsheets have columns nobody planned for.
    custom = models.JSONField(default=dict, blank=True)
    # Website chat: the anonymous visitor id, and until when they count as "live now".
    visitor_id = models.CharField(max_length=64, blank=True, db_index=True)
    # A visitor typed an email that an existing lead already has: this new lead is never merged
    # into that one automatically; a salesperson checks and merges by hand.
    possible_duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="possible_duplicates"
    )
    live_until = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    # Erased (on request or by retention): personal fields anonymised; the row stays so counts by
    # status, source and stage stay right, and the predictive model no longer trains on it.
    erased_at = models.DateTimeField(null=True, blank=True)
    # Scores (filled by the scoring apps)
    rule_score = models.FloatField(default=0)
    fit_score = models.FloatField(default=0)
    engagement_score = models.FloatField(default=0)
    grade = models.CharField(max_length=4, blank=True, help_text="e.g. A2: fit letter × engagement digit.")
    score_breakdown = models.JSONField(default=list, blank=True)
    ml_probability = models.FloatField(null=True, blank=True)
    ml_factors = models.JSONField(default=list, blank=True)
    priority = models.FloatField(default=0, help_text="Blend of rule score and probability; the queue order.")
    scored_at = models.DateTimeField(null=True, blank=True)
    rescore_requested_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=utc_now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LeadQuerySet.as_manager()

    # Not columns: set by leadcrm.selectors.queue_page on the rows of a queue page only.
    top_reason: str
    is_live: bool

    class Meta:
        ordering = ["-priority", "id"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"), name="lead_email_unique_ci", condition=Q(email__isnull=False)
            ),
            models.CheckConstraint(
                condition=Q(employee_count__isnull=True) | Q(employee_count__gte=0),
                name="lead_employee_count_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(ml_probability__isnull=True)
                | (Q(ml_probability__gte=0) & Q(ml_probability__lte=1)),
                name="lead_ml_probability_in_0_1",
            ),
            models.CheckConstraint(condition=Q(status__in=LeadStatus.values), name="lead_status_valid"),
            models.CheckConstraint(condition=Q(source__in=LeadSource.values), name="lead_source_valid"),
        ]
        indexes = [
            models.Index(fields=["-priority", "id"], name="lead_queue_idx"),
            models.Index(fields=["owner", "-priority"], name="lead_owner_queue_idx"),
            models.Index(fields=["status", "-priority"], name="lead_status_queue_idx"),
            models.Index(fields=["grade", "-priority"], name="lead_grade_queue_idx"),
            models.Index(fields=["source", "status"], name="lead_source_status_idx"),
            models.Index(fields=["company_name"], name="lead_company_idx"),
            models.Index(fields=["last_name", "first_name"], name="lead_name_idx"),
            models.Index(
                fields=["rescore_requested_at"],
                name="lead_rescore_pending_idx",
                condition=Q(rescore_requested_at__isnull=False),
            ),
            models.Index(fields=["live_until"], name="lead_live_idx", condition=Q(live_until__isnull=False)),
            models.Index(fields=["updated_at", "id"], name="lead_sync_idx"),  # the API's change feed
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        # Read only when loaded: the queue loads a few columns, and an erased lead has no name,
        # email or company anyway, so it falls through to "Lead #id" there without a query.
        if self.__dict__.get("erased_at") is not None:
            return f"Erased lead #{self.pk}"
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email or self.company_name or f"Lead #{self.pk}"

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_STATUSES

    def clean_fields(self, exclude: Any = None) -> None:
        # Before Django's own field checks, which encode the JSON recursively (a deep value overflows).
        if problem := json_problem(self.custom):
            raise ValidationError({"custom": problem})
        super().clean_fields(exclude=exclude)

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        if self.email:
            self.email = self.email.strip().lower()
        if self.country:
            self.country = self.country.strip().upper()
            if len(self.country) != 2 or not self.country.isalpha():
                errors["country"] = "Use a two-letter ISO country code, e.g. DE or US."
        if self.timezone:
            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                errors["timezone"] = (
                    f"Unknown time zone {self.timezone!r}; use an IANA name like Europe/Berlin."
                )
        if self.status == LeadStatus.LOST and not self.lost_reason:
            errors["lost_reason"] = "Say why the lead was lost."
        if not isinstance(self.custom, dict):
            errors["custom"] = "Custom attributes must be an object of name: value pairs."
        if errors:
            raise ValidationError(errors)


class InteractionKind(models.IntegerChoices):
    PAGE_VIEW = 1, "Page view"
    FORM_SUBMIT = 2, "Form submitted"
    CONTENT_DOWNLOAD = 3, "Content download"
    EMAIL_OPEN = 4, "Email opened"
    EMAIL_CLICK = 5, "Email link clicked"
    EMAIL_REPLY = 6, "Email reply"
    EMAIL_BOUNCE = 7, "Email bounced"
    UNSUBSCRIBE = 8, "Unsubscribed"
    SOCIAL_LIKE = 9, "Social like"
    SOCIAL_SHARE = 10, "Social share"
    SOCIAL_COMMENT = 11, "Social comment"
    SOCIAL_FOLLOW = 12, "Social follow"
    CHAT_MESSAGE = 13, "Chat message"
    CALL = 14, "Call"
    MEETING = 15, "Meeting"
    NOTE = 16, "Note"
    SUPPORT_TICKET = 17, "Support ticket"
    REVIEW = 18, "Review"
    PURCHASE = 19, "Purchase"
    CAPTCHA_FAILED = 20, "Captcha failed"
    EMAIL_SENT = 21, "Email sent"  # by a salesperson (outreach, or logged as an outcome)
    CUSTOM_EVENT = 22, "Custom event"  # the website snippet's leadcrm.track(name): payload "name"

    @classmethod
    def from_slug(cls, slug: str) -> InteractionKind:
        """'page_view' -> PAGE_VIEW; raises ValueError naming the valid kinds."""
        try:
            return cls[slug.upper()]
        except KeyError:
            raise ValueError(
                f"Unknown interaction kind {slug!r}. Use one of: {', '.join(KIND_SLUGS)}."
            ) from None

    @property
    def slug(self) -> str:
        return self.name.lower()


KIND_SLUGS: tuple[str, ...] = tuple(k.name.lower() for k in InteractionKind)


class Channel(models.TextChoices):
    WEB = "web", "Website"
    EMAIL = "email", "Email"
    SOCIAL = "social", "Social media"
    CHAT = "chat", "Chat"
    PHONE = "phone", "Phone"
    IN_PERSON = "in_person", "In person"
    OTHER = "other", "Other"


DEFAULT_CHANNEL: dict[int, str] = {
    **dict.fromkeys([1, 2, 3, 20, 22], Channel.WEB),
    **dict.fromkeys([4, 5, 6, 7, 8, 21], Channel.EMAIL),
    **dict.fromkeys([9, 10, 11, 12, 18], Channel.SOCIAL),
    13: Channel.CHAT,
    14: Channel.PHONE,
    15: Channel.IN_PERSON,
    16: Channel.OTHER,
    17: Channel.EMAIL,
    19: Channel.WEB,
}


class Interaction(models.Model):
    # No index of its own: interaction_lead_time_idx (lead, occurred_at) serves every lookup by lead.
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="interactions", db_index=False)
    kind = models.PositiveSmallIntegerField(choices=InteractionKind.choices)
    channel = models.CharField(max_length=12, choices=Channel.choices, default=Channel.OTHER)
    occurred_at = models.DateTimeField(default=utc_now)
    # URL, subject, text, duration_s, amount... whatever the kind carries.
    payload = models.JSONField(default=dict, blank=True)
    sentiment = models.FloatField(null=True, blank=True, help_text="-1 (negative) … +1 (positive).")
    logged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # interaction_logged_by_idx: only the rows a person logged
    )
    created_at = models.DateTimeField(default=utc_now)
    # The sender's own id for this event (the API's Idempotency-Key): a retried request is stored once.
    client_event_id = models.CharField(max_length=100, blank=True, default="", db_default="")

    # Not columns: set by the leadcrm.selectors timeline reads, formatted once for the template.
    when_iso: str
    when_text: str

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=InteractionKind.values), name="interaction_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(sentiment__isnull=True) | (Q(sentiment__gte=-1) & Q(sentiment__lte=1)),
                name="interaction_sentiment_in_range",
            ),
            models.UniqueConstraint(
                fields=["lead", "client_event_id"],
                condition=~Q(client_event_id=""),
                name="interaction_client_event_once",
            ),
        ]
        # Each index costs every inserted event (the batch API's hot path): no two with the same
        # leading columns. On PostgreSQL the (lead, occurred_at) index carries kind too, so that the
        # scoring aggregate reads it without the table (INCLUDE is ignored on SQLite).
        indexes = [
            models.Index(fields=["lead", "occurred_at"], include=["kind"], name="interaction_lead_time_idx"),
            models.Index(fields=["kind", "occurred_at"], name="interaction_kind_time_idx"),
            models.Index(fields=["created_at", "id"], name="interaction_sync_idx"),  # the API's change feed
            models.Index(
                fields=["logged_by"], condition=Q(logged_by__isnull=False), name="interaction_logged_by_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by lead {self.lead_id} at {self.occurred_at:%Y-%m-%d %H:%M}"

    @property
    def kind_slug(self) -> str:
        return InteractionKind(self.kind).slug

    @property
    def summary(self) -> str:
        p = self.payload or {}
        if self.kind == InteractionKind.CUSTOM_EVENT:  # the event's name, not the page it fired on
            return str(p.get("name") or p.get("event") or "")[:200]
        return str(p.get("subject") or p.get("url") or p.get("text") or p.get("title") or "")[:200]

    def clean_fields(self, exclude: Any = None) -> None:
        # Before Django's own field checks, which encode the JSON recursively (a deep value overflows).
        if problem := json_problem(self.payload):
            raise ValidationError({"payload": problem})
        super().clean_fields(exclude=exclude)

    def clean(self) -> None:
        super().clean()
        if not isinstance(self.payload, dict):
            raise ValidationError({"payload": 'Payload must be an object, e.g. {"url": "/pricing"}.'})
        if self.occurred_at is not None and self.occurred_at < EARLIEST_INTERACTION:
            raise ValidationError({"occurred_at": "An interaction cannot be dated before 1970."})
        amount = self.payload.get("amount") if isinstance(self.payload, dict) else None
        if amount is not None and (not isinstance(amount, int | float) or amount < 0):
            raise ValidationError({"payload": "amount must be a number ≥ 0."})


class SegmentKind(models.TextChoices):
    STATIC = "static", "Static list"
    DYNAMIC = "dynamic", "Dynamic (computed from criteria)"


class Segment(models.Model):
    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=SegmentKind.choices, default=SegmentKind.STATIC)
    # Dynamic segments: filter criteria, e.g. {"industry": "Retail", "employee_count__gte": 50}
    criteria = models.JSONField(default=dict, blank=True)
    members: models.ManyToManyField[Lead, SegmentMembership] = models.ManyToManyField(
        Lead, through="SegmentMembership", related_name="segments", blank=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=utc_now)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)  # the API's change feed (updated_after)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.kind == SegmentKind.DYNAMIC:
            from leadcrm.segments import validate_criteria

            validate_criteria(self.criteria)


class SegmentMembership(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="memberships")
    added_at = models.DateTimeField(default=utc_now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "lead"], name="segment_membership_unique")]
        indexes = [models.Index(fields=["lead"], name="segment_membership_lead_idx")]

    def __str__(self) -> str:
        return f"{self.lead} in {self.segment}"


class FollowUp(models.Model):
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="follow_ups")
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="follow_ups"
    )
    due_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(auto_now=True)  # the API's change feed (updated_after)
    # Overdue escalation (leadcrm.tasks.escalate_overdue_follow_ups): when the owner was told it is
    # overdue, and when the managers were; each fires once. Rescheduling clears both.
    overdue_alerted_at = models.DateTimeField(null=True, blank=True, editable=False)
    escalated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["due_at"]
        indexes = [
            models.Index(fields=["assigned_to", "done_at", "due_at"], name="followup_todo_idx"),
            models.Index(fields=["lead", "due_at"], name="followup_lead_idx"),
            models.Index(fields=["updated_at", "id"], name="followup_sync_idx"),
            # The escalation sweep: open follow-ups not yet escalated, by due time.
            models.Index(
                fields=["due_at"],
                name="followup_escalation_idx",
                condition=Q(done_at__isnull=True, escalated_at__isnull=True),
            ),
        ]
        constraints = [
            # No promise without an owner: an open follow-up always has someone assigned
            # (leadcrm.services.add_follow_up routes one; a user who is deleted hands theirs on).
            models.CheckConstraint(
                condition=Q(done_at__isnull=False) | Q(assigned_to__isnull=False),
                name="followup_open_has_owner",
                violation_error_message="An open follow-up needs an owner.",
            )
        ]

    def __str__(self) -> str:
        return f"Follow up {self.lead} by {self.due_at:%Y-%m-%d %H:%M}"

    @property
    def is_done(self) -> bool:
        return self.done_at is not None


class ConsentPurpose(models.TextChoices):
    CONTACT = "contact", "Contact about their request"
    MARKETING = "marketing", "Marketing messages"


class ConsentSource(models.TextChoices):
    WIDGET = "widget", "Website chat"
    IMPORT = "import", "Import"
    API = "api", "API"
    SALESPERSON = "salesperson", "Salesperson"
    ADMIN = "admin", "Admin"


class Consent(models.Model):
    """One consent given or withdrawn: what was asked (the wording and its version), when, where
    and who recorded it. Append-only; the lead's consent flags mirror the newest row per purpose."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="consents")
    purpose = models.CharField(max_length=20, choices=ConsentPurpose.choices)
    granted = models.BooleanField()
    text = models.TextField(blank=True, help_text="The wording the person saw.")
    text_version = models.CharField(max_length=50, blank=True)
    source = models.CharField(max_length=20, choices=ConsentSource.choices)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recorded_at = models.DateTimeField(default=utc_now)

    class Meta:
        ordering = ["recorded_at", "id"]
        indexes = [models.Index(fields=["lead", "purpose", "-recorded_at"], name="consent_lead_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(purpose__in=ConsentPurpose.values), name="consent_purpose_valid"
            ),
            models.CheckConstraint(condition=Q(source__in=ConsentSource.values), name="consent_source_valid"),
        ]

    def __str__(self) -> str:
        verb = "gave" if self.granted else "withdrew"
        return f"{self.lead} {verb} {self.purpose} consent ({self.source})"


class RecordedActivity(models.Model):
    """Leads that got events through `record_interactions_bulk` whose last activity and rescore
    request are still to be applied: the batch's outbox row, written in the events' own
    transaction. `leadcrm.tasks.apply_recorded_activity` applies waiting rows within about a
    second (one UPDATE per lead for many batches at once, no lead row locked by the request);
    the beat sweep applies whatever a lost nudge or a dead worker left behind."""

    touched = models.JSONField(help_text="[[lead id, newest occurred_at (ISO 8601)], …]")
    created_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name_plural = "recorded activity"

    def __str__(self) -> str:
        return f"Activity of {len(self.touched)} leads recorded at {self.created_at:%Y-%m-%d %H:%M:%S}"


def validate_zone(value: str) -> None:
    if value:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"{value!r} is not a time zone name, e.g. Europe/Paris.") from None


class StaffProfile(models.Model):
    """A salesperson's or manager's own settings: on duty for live chats, their time zone, alerts.

    Routing (`leadcrm.routing`) reads `on_duty` and `last_routed_at`; a user without a profile row
    is off duty and reads times in the browser's zone.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile"
    )
    on_duty = models.BooleanField(default=False, help_text="Takes live chats and callbacks now.")
    on_duty_changed_at = models.DateTimeField(null=True, blank=True)
    last_routed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a chat or promise was last routed to them (round robin)."
    )
    timezone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validate_zone],
        help_text="Times are shown in this zone. Blank: the browser's zone.",
    )
    alert_sound = models.BooleanField(default=False, help_text="Play a sound when a visitor is waiting.")
    alert_desktop = models.BooleanField(
        default=False, help_text="Show a desktop notification when a visitor is waiting."
    )

    class Meta:
        indexes = [
            models.Index(fields=["last_routed_at"], name="staff_on_duty_idx", condition=Q(on_duty=True)),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({'on duty' if self.on_duty else 'off duty'})"


# The playbook and canned replies live in their own module; imported here so Django registers them.
from leadcrm.playbook_models import CannedReply as CannedReply  # noqa: E402
from leadcrm.playbook_models import Playbook as Playbook  # noqa: E402
from leadcrm.playbook_models import PlaybookKind as PlaybookKind  # noqa: E402
from leadcrm.playbook_models import PlaybookRule as PlaybookRule  # noqa: E402
