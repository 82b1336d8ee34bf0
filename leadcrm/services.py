"""Writes to the CRM core. Every function validates first and raises ValidationError on bad input.

The next step is called, not signalled: a change that can move a score calls
`scoring.services.request_rescore`, which queues one rescore after the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from leadcrm.models import (
    CLOSED_STATUSES,
    DEFAULT_CHANNEL,
    FollowUp,
    Interaction,
    InteractionKind,
    Lead,
    LeadStatus,
    Segment,
    SegmentKind,
    SegmentMembership,
)
from leadcrm.segments import criteria_q
from scoring.services import request_rescore

LEAD_WRITABLE_FIELDS = frozenset(
    f.name
    for f in Lead._meta.concrete_fields
    if f.name
    not in {
        "id",
        "rule_score",
        "fit_score",
        "engagement_score",
        "grade",
        "score_breakdown",
        "ml_probability",
        "ml_factors",
        "priority",
        "scored_at",
        "rescore_requested_at",
        "updated_at",
        "status_changed_at",
        "qualified_at",
        "closed_at",
        "live_until",
        "last_activity_at",
    }
)


def _check_fields(fields: Mapping[str, Any]) -> None:
    unknown = sorted(set(fields) - LEAD_WRITABLE_FIELDS - {"owner_id"})
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "Unknown or read-only lead field."))


def _save_lead(lead: Lead, fields: Iterable[str] | None = None) -> None:
    """Validate and save; an existing lead saves only `fields`, so scores and last activity that
    workers write with SQL meanwhile are never overwritten with this object's stale copies."""
    lead.full_clean()
    update_fields = None if fields is None else sorted({*fields, "updated_at"})
    try:
        with transaction.atomic():
            lead.save(update_fields=update_fields)
    except IntegrityError as exc:  # a concurrent insert of the same email slipped past full_clean
        raise ValidationError({"email": "A lead with this email already exists."}) from exc


def _stamp_consent(lead: Lead, fields: Mapping[str, Any], now: datetime) -> None:
    for flag in ("marketing_consent", "contact_consent"):
        if fields.get(flag) and not fields.get(f"{flag}_at"):
            setattr(lead, f"{flag}_at", now)
        if flag in fields and not fields[flag]:
            setattr(lead, f"{flag}_at", None)


def create_lead(*, now: datetime | None = None, **fields: Any) -> Lead:
    """Validate and store a new lead, then queue its first score."""
    _check_fields(fields)
    now = now or timezone.now()
    if fields.get("email"):
        fields["email"] = str(fields["email"]).strip().lower()
        if Lead.objects.filter(email__iexact=fields["email"]).exists():
            raise ValidationError({"email": "A lead with this email already exists."})
    lead = Lead(**fields)
    _stamp_consent(lead, fields, now)
    if lead.status != LeadStatus.NEW:
        lead.status_changed_at = now
        if lead.status in CLOSED_STATUSES:
            lead.closed_at = now
    with transaction.atomic():
        _save_lead(lead)
        request_rescore(lead.pk)
    return lead


def update_lead(*, lead: Lead, now: datetime | None = None, **fields: Any) -> Lead:
    """Change profile fields of a lead (status goes through change_status) and queue a rescore."""
    _check_fields(fields)
    if "status" in fields:
        raise ValidationError({"status": "Use change_status to move a lead through its lifecycle."})
    now = now or timezone.now()
    if fields.get("email"):
        fields["email"] = str(fields["email"]).strip().lower()
        if Lead.objects.filter(email__iexact=fields["email"]).exclude(pk=lead.pk).exists():
            raise ValidationError({"email": "A lead with this email already exists."})
    for name, value in fields.items():
        setattr(lead, name, value)
    _stamp_consent(lead, fields, now)
    changed = {"owner" if name == "owner_id" else name for name in fields}
    changed |= {f"{flag}_at" for flag in ("marketing_consent", "contact_consent") if flag in fields}
    with transaction.atomic():
        _save_lead(lead, changed)
        request_rescore(lead.pk)
    return lead


def _check_interaction_constraints(interaction: Interaction) -> None:
    """Interaction's check constraints, evaluated in Python with Django's own errors.

    full_clean checks each one with a SAVEPOINT + SELECT + RELEASE, three queries per constraint
    on every stored interaction (a chat message is one); these two are plain comparisons.
    """
    in_python = {
        "interaction_kind_valid": lambda: interaction.kind in InteractionKind.values,
        "interaction_sentiment_in_range": lambda: (
            interaction.sentiment is None or -1 <= interaction.sentiment <= 1
        ),
    }
    errors: list[ValidationError] = []
    for constraint in Interaction._meta.constraints:
        check = in_python.get(constraint.name)
        if check is None:  # a constraint added later is still checked, the database way
            try:
                constraint.validate(Interaction, interaction, exclude={"lead"})
            except ValidationError as exc:
                errors.append(exc)
        elif not check():
            errors.append(
                ValidationError(
                    constraint.get_violation_error_message(), code=constraint.violation_error_code
                )
            )
    if errors:
        raise ValidationError({NON_FIELD_ERRORS: errors})


def record_interaction(
    *,
    lead: Lead | int,
    kind: str | int,
    occurred_at: datetime | None = None,
    channel: str | None = None,
    payload: Mapping[str, Any] | None = None,
    sentiment: float | None = None,
    logged_by: AbstractBaseUser | None = None,
) -> Interaction:
    """Store one interaction, bump the lead's last activity, and queue a rescore after commit."""
    lead_id = lead if isinstance(lead, int) else lead.pk
    try:
        kind_value = InteractionKind(kind) if isinstance(kind, int) else InteractionKind.from_slug(str(kind))
    except ValueError as exc:
        raise ValidationError({"kind": str(exc)}) from None
    now = timezone.now()
    occurred_at = occurred_at or now
    if occurred_at > now + timezone.timedelta(minutes=5):
        raise ValidationError({"occurred_at": "An interaction cannot happen in the future."})
    interaction = Interaction(
        lead_id=lead_id,
        kind=kind_value,
        channel=channel or DEFAULT_CHANNEL[int(kind_value)],
        occurred_at=occurred_at,
        payload=dict(payload or {}),
        sentiment=sentiment,
        logged_by=logged_by,
        created_at=now,
    )
    interaction.full_clean(exclude=["lead"], validate_constraints=False)
    _check_interaction_constraints(interaction)
    with transaction.atomic():
        if not Lead.objects.filter(pk=lead_id).update(
            last_activity_at=Greatest(Coalesce(F("last_activity_at"), occurred_at), occurred_at)
        ):
            raise ValidationError({"lead": f"Lead {lead_id} does not exist."})
        interaction.save()
        request_rescore(lead_id)
    return interaction


def change_status(
    *,
    lead: Lead,
    status: str,
    by: AbstractBaseUser | None = None,
    lost_reason: str = "",
    note: str = "",
    now: datetime | None = None,
) -> Lead:
    """Move a lead through its lifecycle, keep the timestamps, log it, and queue a rescore."""
    if status not in LeadStatus.values:
        raise ValidationError(
            {"status": f"Unknown status {status!r}. Use one of: {', '.join(LeadStatus.values)}."}
        )
    if status == LeadStatus.LOST and not lost_reason.strip():
        raise ValidationError({"lost_reason": "Say why the lead was lost."})
    now = now or timezone.now()
    previous = lead.status
    lead.status = status
    lead.status_changed_at = now
    lead.lost_reason = lost_reason.strip() if status == LeadStatus.LOST else ""
    if status == LeadStatus.QUALIFIED and not lead.qualified_at:
        lead.qualified_at = now
    lead.closed_at = now if status in CLOSED_STATUSES else None
    with transaction.atomic():
        _save_lead(lead, ["status", "status_changed_at", "lost_reason", "qualified_at", "closed_at"])
        Interaction.objects.create(
            lead=lead,
            kind=InteractionKind.NOTE,
            channel="other",
            occurred_at=now,
            payload={
                "text": note,
                "status_from": previous,
                "status_to": status,
                "lost_reason": lead.lost_reason,
            },
            logged_by=by,
            created_at=now,
        )
        request_rescore(lead.pk)
    return lead


def claim_lead(*, lead: Lead, user: AbstractBaseUser) -> Lead:
    """Assign an unassigned lead to `user`; refuses if someone else got there first."""
    if lead.owner_id == user.pk:
        return lead
    claimed = Lead.objects.filter(pk=lead.pk, owner__isnull=True).update(
        owner=user, updated_at=timezone.now()
    )
    if not claimed:
        raise ValidationError("This lead already has an owner.")
    lead.refresh_from_db(fields=["owner", "updated_at"])
    return lead


def assign_lead(*, lead: Lead, owner: AbstractBaseUser | None) -> Lead:
    """Give a lead to a salesperson (or nobody); managers only, checked by the caller."""
    lead.owner = owner
    lead.save(update_fields=["owner", "updated_at"])
    return lead


def add_follow_up(
    *,
    lead: Lead,
    due_at: datetime,
    note: str = "",
    assigned_to: AbstractBaseUser | None = None,
    created_by: AbstractBaseUser | None = None,
    now: datetime | None = None,
) -> FollowUp:
    """Create a follow-up task; it must be due in the future."""
    now = now or timezone.now()
    if due_at < now - timezone.timedelta(minutes=1):
        raise ValidationError({"due_at": "A follow-up must be due in the future."})
    follow_up = FollowUp(
        lead=lead,
        due_at=due_at,
        note=note.strip(),
        assigned_to=assigned_to or lead.owner or created_by,
        created_by=created_by,
        created_at=now,
    )
    follow_up.full_clean()
    follow_up.save()
    return follow_up


def complete_follow_up(*, follow_up: FollowUp, now: datetime | None = None) -> FollowUp:
    """Mark a follow-up done (idempotent)."""
    if follow_up.done_at is None:
        follow_up.done_at = now or timezone.now()
        follow_up.save(update_fields=["done_at"])
    return follow_up


def add_to_segment(*, segment: Segment, leads: Iterable[Lead | int]) -> int:
    """Add leads to a static segment; returns how many were new members."""
    if segment.kind != SegmentKind.STATIC:
        raise ValidationError("Dynamic segments are computed from their criteria; edit those instead.")
    ids = {lead if isinstance(lead, int) else lead.pk for lead in leads}
    existing = set(
        SegmentMembership.objects.filter(segment=segment, lead_id__in=ids).values_list("lead_id", flat=True)
    )
    new = [SegmentMembership(segment=segment, lead_id=i) for i in ids - existing]
    SegmentMembership.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def refresh_dynamic_segment(*, segment: Segment, now: datetime | None = None) -> int:
    """Recompute a dynamic segment's members set-based (one DELETE, one INSERT … SELECT)."""
    if segment.kind != SegmentKind.DYNAMIC:
        raise ValidationError("Only dynamic segments are refreshed from criteria.")
    now = now or timezone.now()
    matching = Lead.objects.filter(criteria_q(segment.criteria)).values_list("pk", flat=True)
    with transaction.atomic():
        SegmentMembership.objects.filter(segment=segment).exclude(lead_id__in=matching).delete()
        current = SegmentMembership.objects.filter(segment=segment).values_list("lead_id", flat=True)
        to_add = matching.exclude(pk__in=current)
        SegmentMembership.objects.bulk_create(
            [
                SegmentMembership(segment=segment, lead_id=pk, added_at=now)
                for pk in to_add.iterator(chunk_size=5000)
            ],
            batch_size=5000,
            ignore_conflicts=True,
        )
        segment.refreshed_at = now
        segment.save(update_fields=["refreshed_at"])
    return SegmentMembership.objects.filter(segment=segment).count()


def leads_matching(criteria: Mapping[str, Any]) -> Q:
    """Q for leads matching segment-style criteria (validated)."""
    return criteria_q(dict(criteria))
