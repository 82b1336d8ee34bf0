"""Scoring data: rules a manager writes, grade bands, rule history, recompute runs, score history."""

from __future__ import annotations

import re
import string
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.timezone import now as utc_now

from leadcrm.models import InteractionKind, Lead

MAX_POINTS = 1000  # a rule worth more than the whole scale is a typo, not a weight


class Category(models.TextChoices):
    FIT = "fit", "Demographic / firmographic fit"
    ENGAGEMENT = "engagement", "Engagement"
    NEGATIVE = "negative", "Negative / spam signal"


class Operator(models.TextChoices):
    EQUALS = "equals", "equals"
    NOT_EQUALS = "not_equals", "does not equal"
    IN_LIST = "in", "is one of (comma-separated list)"
    CONTAINS = "contains", "contains"
    GREATER = "gt", "is greater than"
    LESS = "lt", "is less than"
    BETWEEN = "between", "is between (two numbers, inclusive)"
    IS_SET = "is_set", "is set"
    IS_EMPTY = "is_empty", "is empty"


class Detector(models.TextChoices):
    NAME_NOT_CAPITALISED = "name_not_capitalised", "Name not capitalised"
    KEYBOARD_MASH = "keyboard_mash", "Keyboard mash or repeated characters in name/company"
    DISPOSABLE_EMAIL = "disposable_email", "Disposable email domain"
    EMAIL_NAME_MISMATCH = "email_name_mismatch", "Email and name do not match (or placeholder name)"
    FAILED_CAPTCHA = "failed_captcha", "Failed captcha"
    UNSUBSCRIBE_BOUNCE = "unsubscribe_bounce", "Unsubscribed or email bounced"


# Lead fields a fit rule may compare, by kind of value. Text fields take no greater/less-than.
TEXT_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "company_name",
    "industry",
    "job_title",
    "country",
    "city",
    "timezone",
    "preferred_language",
    "source",
    "status",
    "annual_revenue_band",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)
NUMBER_FIELDS = ("employee_count",)
BOOLEAN_FIELDS = ("marketing_consent", "contact_consent")
FIT_FIELDS = TEXT_FIELDS + NUMBER_FIELDS + BOOLEAN_FIELDS
CUSTOM_PREFIX = "custom."
_CUSTOM_KEY = re.compile(r"^[A-Za-z0-9_\- ]{1,64}$")
TEXT_OPERATORS = {"equals", "not_equals", "in", "contains", "is_set", "is_empty"}
NUMBER_OPERATORS = {"equals", "not_equals", "in", "gt", "lt", "between", "is_set", "is_empty"}
BOOLEAN_OPERATORS = {"equals", "is_set", "is_empty"}
REASON_PLACEHOLDERS = {"count", "points"}
TEXT_DETECTORS = {
    Detector.NAME_NOT_CAPITALISED,
    Detector.KEYBOARD_MASH,
    Detector.DISPOSABLE_EMAIL,
    Detector.EMAIL_NAME_MISMATCH,
}


def field_kind(field: str) -> str | None:
    """'text', 'number', 'boolean' or 'custom' for a fit field; None when unknown."""
    if field in TEXT_FIELDS:
        return "text"
    if field in NUMBER_FIELDS:
        return "number"
    if field in BOOLEAN_FIELDS:
        return "boolean"
    if field.startswith(CUSTOM_PREFIX) and _CUSTOM_KEY.match(field[len(CUSTOM_PREFIX) :]):
        return "custom"
    return None


def parse_number(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"{raw.strip()!r} is not a number.") from None


def parse_value(operator: str, raw: str, kind: str) -> Any:
    """The typed value of a fit rule from what the manager typed; ValueError with a readable message."""
    raw = (raw or "").strip()
    if operator in ("is_set", "is_empty"):
        return None
    if not raw:
        raise ValueError("Give a value to compare with.")
    if operator == "between":
        parts = [p for p in re.split(r"\s*(?:,|;|\.\.|\band\b)\s*", raw) if p]
        if len(parts) != 2:
            raise ValueError('"between" needs two numbers separated by a comma, e.g. 50, 500.')
        low, high = (parse_number(p) for p in parts)
        if low > high:
            raise ValueError(f"The first number ({low:g}) must not be larger than the second ({high:g}).")
        return [low, high]
    if operator in ("gt", "lt"):
        return parse_number(raw)
    if operator == "in":
        items = [p.strip() for p in raw.split(",") if p.strip()]
        if not items:
            raise ValueError("Give at least one value, separated by commas.")
        return [parse_number(i) for i in items] if kind == "number" else items
    if kind == "number":
        return parse_number(raw)
    if kind == "boolean":
        lowered = raw.lower()
        if lowered not in ("yes", "no", "true", "false", "1", "0"):
            raise ValueError("Use yes or no.")
        return lowered in ("yes", "true", "1")
    return raw


# What a manager edits on a rule (the admin form and the API share it).
RULE_EDITABLE_FIELDS = (
    "name",
    "category",
    "points",
    "reason",
    "active",
    "field",
    "operator",
    "value",
    "kinds",
    "pattern",
    "window_days",
    "threshold",
    "cap",
    "half_life_days",
    "detector",
)


class Rule(models.Model):
    """One line of the scoring model: when it applies, how many points, and the reason shown to sales."""

    name = models.CharField(
        max_length=120, unique=True, error_messages={"unique": "A rule with this name exists."}
    )
    category = models.CharField(max_length=12, choices=Category.choices, default=Category.FIT)
    points = models.IntegerField(
        validators=[MinValueValidator(-MAX_POINTS), MaxValueValidator(MAX_POINTS)],
        help_text="Points when the rule applies (per occurrence for engagement rules without a threshold)."
        f" Negative allowed; from -{MAX_POINTS} to {MAX_POINTS}.",
    )
    active = models.BooleanField(default=True)
    reason = models.CharField(
        max_length=200,
        help_text="Plain words for the salesperson, e.g. “Visited the pricing page {count}× this month”."
        " {count} and {points} are filled in.",
    )
    # Fit rules
    field = models.CharField(
        max_length=80,
        blank=True,
        help_text="Lead field, e.g. job_title, employee_count, country; or custom.NAME for a custom attribute.",
    )
    operator = models.CharField(max_length=12, choices=Operator.choices, blank=True)
    value = models.CharField(
        max_length=500,
        blank=True,
        help_text="Text or number; a comma-separated list for “is one of”; two numbers for “between”.",
    )
    # Engagement rules
    kinds = models.JSONField(
        default=list, blank=True, help_text="Interaction kinds counted (small-int InteractionKind values)."
    )
    pattern = models.CharField(
        max_length=200,
        blank=True,
        help_text=(
            "Only count interactions whose URL, subject or custom event name contains this text, "
            "e.g. /pricing or signup."
        ),
    )
    window_days = models.IntegerField(
        null=True, blank=True, help_text="Count only the last N days (empty: all time)."
    )
    threshold = models.IntegerField(
        null=True,
        blank=True,
        help_text="Give the points once when the count reaches this number (empty: per occurrence).",
    )
    cap = models.IntegerField(
        null=True, blank=True, help_text="Most points this rule can give per lead (per-occurrence rules)."
    )
    half_life_days = models.FloatField(
        null=True, blank=True, help_text="Time decay: an interaction this many days old counts half."
    )
    # Negative / spam signals
    detector = models.CharField(max_length=24, choices=Detector.choices, blank=True)

    last_error = models.TextField(blank=True, help_text="Why the last evaluation of this rule failed.")
    last_error_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["category", "name"]
        indexes = [models.Index(fields=["active", "category"], name="rule_active_idx")]

    def __str__(self) -> str:
        return self.name

    def typed_value(self) -> Any:
        return parse_value(self.operator, self.value, field_kind(self.field) or "text")

    def clean(self) -> None:
        """Refuse rules that cannot be evaluated, with a message a manager understands."""
        super().clean()
        errors: dict[str, str] = {}
        try:
            names = {n for _, n, _, _ in string.Formatter().parse(self.reason or "") if n}
        except ValueError:
            names = {"?"}
        if names - REASON_PLACEHOLDERS:
            errors["reason"] = "Only {count} and {points} can be filled into the reason."
        if self.category == Category.FIT:
            self._clean_fit(errors)
        elif self.category == Category.ENGAGEMENT:
            self._clean_engagement(errors)
        elif self.category == Category.NEGATIVE:
            if not self.detector:
                errors["detector"] = "Choose which spam signal this rule detects."
            if self.detector not in TEXT_DETECTORS:
                self._clean_window(errors)
        if self.category != Category.NEGATIVE and self.detector:
            errors["detector"] = "Only negative / spam rules use a detector."
        if errors:
            raise ValidationError(errors)

    def _clean_fit(self, errors: dict[str, str]) -> None:
        field = (self.field or "").strip()
        self.field = field
        kind = field_kind(field)
        if not field:
            errors["field"] = "Fit rules compare a lead field; name one, e.g. job_title."
            return
        if kind is None:
            errors["field"] = (
                f"Unknown field {field!r}. Use one of: {', '.join(FIT_FIELDS)}, or custom.<attribute>."
            )
            return
        if not self.operator:
            errors["operator"] = "Choose how to compare the field."
            return
        allowed = {"text": TEXT_OPERATORS, "number": NUMBER_OPERATORS, "boolean": BOOLEAN_OPERATORS}.get(
            kind, NUMBER_OPERATORS | TEXT_OPERATORS
        )
        if self.operator not in allowed:
            label = Operator(self.operator).label
            errors["operator"] = f"{field} is a {kind} field; it cannot be compared with “{label}”." + (
                " Greater/less-than and between need a number field." if kind == "text" else ""
            )
            return
        try:
            parse_value(self.operator, self.value, kind)
        except ValueError as exc:
            errors["value"] = str(exc)
        if self.kinds or self.pattern or self.threshold or self.cap or self.half_life_days:
            errors["kinds"] = "Fit rules do not count interactions; clear the engagement settings."

    def _clean_engagement(self, errors: dict[str, str]) -> None:
        if not isinstance(self.kinds, list) or not self.kinds:
            errors["kinds"] = "Choose at least one interaction kind to count."
        else:
            bad = [k for k in self.kinds if not isinstance(k, int) or k not in InteractionKind.values]
            if bad:
                errors["kinds"] = f"Unknown interaction kind(s): {bad}."
        self._clean_window(errors)
        if self.threshold is not None and self.threshold < 1:
            errors["threshold"] = "A threshold is a count of at least 1."
        if self.cap is not None and self.cap < 0:
            errors["cap"] = "The cap is a number of points, 0 or more."
        if self.cap is not None and self.threshold is not None:
            errors["cap"] = "A cap applies to per-occurrence points; a threshold rule gives its points once."
        if self.half_life_days is not None and self.half_life_days <= 0:
            errors["half_life_days"] = "The half-life must be more than 0 days."
        if self.field or self.operator:
            errors["field"] = "Engagement rules count interactions; clear the field comparison."

    def _clean_window(self, errors: dict[str, str]) -> None:
        if self.window_days is not None and self.window_days < 1:
            errors["window_days"] = f"A window of {self.window_days} days makes no sense; use 1 or more."

    def as_json(self) -> dict[str, Any]:
        """The rule's settings for the change history."""
        return {
            f.name: getattr(self, f.attname)
            for f in self._meta.concrete_fields
            if f.name not in ("id", "last_error", "last_error_at", "created_at", "updated_at")
        }


class GradeDimension(models.TextChoices):
    FIT = "fit", "Fit (letter)"
    ENGAGEMENT = "engagement", "Engagement (digit)"


class GradeBand(models.Model):
    """A band on the fit or engagement score, e.g. A at ≥ 40 fit points. The lowest band catches all below."""

    dimension = models.CharField(max_length=12, choices=GradeDimension.choices)
    label = models.CharField(max_length=2, help_text="A, B, C… for fit; 1, 2, 3… for engagement.")
    min_score = models.FloatField(help_text="Lowest score in this band.")

    class Meta:
        ordering = ["dimension", "-min_score"]
        constraints = [
            models.UniqueConstraint(fields=["dimension", "label"], name="grade_band_label_unique"),
            models.UniqueConstraint(fields=["dimension", "min_score"], name="grade_band_min_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_dimension_display()} {self.label} ≥ {self.min_score:g}"


class RuleChange(models.Model):
    """Every create, update or delete of a rule: who, when, before and after."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        DELETED = "deleted", "Deleted"

    rule = models.ForeignKey(Rule, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes")
    rule_name = models.CharField(max_length=120)
    action = models.CharField(max_length=8, choices=Action.choices)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(default=utc_now)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["rule", "-changed_at"], name="rule_change_rule_idx")]

    def __str__(self) -> str:
        return f"{self.rule_name} {self.action} at {self.changed_at:%Y-%m-%d %H:%M}"


class RecomputeRun(models.Model):
    """A full recompute of every lead (after a rule change, nightly decay, or by hand) and its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Computing"
        APPLYING = "applying", "Saving new scores"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    reason = models.CharField(max_length=200)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField(default=utc_now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    total_leads = models.IntegerField(default=0)
    done_leads = models.IntegerField(default=0)
    changed_leads = models.IntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="Rules that failed, and why.")
    # The worker running it renews the lease per chunk; a run whose lease ran out lost its worker
    # (killed, out of memory, machine gone) and is taken over by the next delivery or the sweep.
    attempts = models.PositiveSmallIntegerField(default=0, db_default=0, help_text="Workers that started it.")
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-created_at"], name="recompute_status_idx")]

    def __str__(self) -> str:
        return f"Recompute #{self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return int(100 * self.done_leads / self.total_leads) if self.total_leads else 0

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING, self.Status.APPLYING)


class ScoreSnapshot(models.Model):
    """One row each time a lead's scores change: the score trend line."""

    # Written up to a million rows at a time by a full recompute: no database-level FK check per row
    # (Django still cascades lead deletes), and no separate lead_id index (the (lead, time) one serves).
    lead = models.ForeignKey(
        Lead, on_delete=models.CASCADE, related_name="score_snapshots", db_constraint=False, db_index=False
    )
    taken_at = models.DateTimeField(default=utc_now)
    rule_score = models.FloatField()
    fit_score = models.FloatField(default=0)
    engagement_score = models.FloatField(default=0)
    grade = models.CharField(max_length=4, blank=True)
    ml_probability = models.FloatField(null=True, blank=True)
    priority = models.FloatField(default=0)

    class Meta:
        ordering = ["lead", "taken_at"]
        indexes = [models.Index(fields=["lead", "taken_at"], name="snapshot_lead_time_idx")]

    def __str__(self) -> str:
        return f"{self.lead_id} at {self.taken_at:%Y-%m-%d %H:%M}: {self.rule_score:.0f}"
