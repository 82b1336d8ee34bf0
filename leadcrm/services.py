"""The one writer of leads and interactions: admin, API, pages, chat and imports all call these.

Every function validates first and raises ValidationError on bad input. The next step is called,
not signalled: a change that can move a score calls `scoring.services.request_rescore` (the CRM
core's one call into another app), which queues one rescore after the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from leadcrm.models import (
    CLOSED_STATUSES,
    DEFAULT_CHANNEL,
    NUL_MESSAGE,
    SCORE_FIELDS,
    Channel,
    Consent,
    ConsentPurpose,
    ConsentSource,
    FollowUp,
    Interaction,
    InteractionKind,
    Lead,
    LeadStatus,
    Segment,
    SegmentKind,
    SegmentMembership,
    has_nul,
)
from leadcrm.permissions import can_change_lead
from leadcrm.segments import criteria_q
from scoring.services import request_rescore

LEAD_WRITABLE_FIELDS = frozenset(
    f.name
    for f in Lead._meta.concrete_fields
    if f.name
    not in {
        "id",
        *SCORE_FIELDS,
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
        # Enforced by the database; record_interaction returns the stored event on a conflict.
        "interaction_client_event_once": lambda: True,
    }
    errors: list[ValidationError] = []
    for constraint in Interaction._meta.constraints:
        check = in_python.get(constraint.name)
        if check is None:  # a constraint added later is still checked, the database way
            try:
                constraint.validate(Interaction, interaction, exclude={"lead"})  # type: ignore[attr-defined]
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
    logged_by: User | None = None,
    client_event_id: str = "",
) -> Interaction:
    """Store one interaction, bump the lead's last activity, and queue a rescore after commit.

    With a `client_event_id` the event is stored once per lead: a retry returns the stored one
    (no second row, no second count in engagement rules). The unique constraint decides, so the
    first delivery costs no extra query.
    """
    lead_id = lead if isinstance(lead, int) else lead.pk
    try:
        kind_value = InteractionKind(kind) if isinstance(kind, int) else InteractionKind.from_slug(str(kind))
    except ValueError as exc:
        raise ValidationError({"kind": str(exc)}) from None
    now = timezone.now()
    occurred_at = occurred_at or now
    if occurred_at > now + timedelta(minutes=5):
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
        client_event_id=client_event_id,
    )
    interaction.full_clean(exclude=["lead"], validate_constraints=False)
    _check_interaction_constraints(interaction)
    try:
        with transaction.atomic():
            if not Lead.objects.filter(pk=lead_id).update(
                last_activity_at=Greatest(Coalesce(F("last_activity_at"), occurred_at), occurred_at)
            ):
                raise ValidationError({"lead": f"Lead {lead_id} does not exist."})
            interaction.save()
            request_rescore(lead_id)
    except IntegrityError:
        stored = find_event(lead_id=lead_id, client_event_id=client_event_id) if client_event_id else None
        if stored is None:
            raise
        return stored  # a concurrent retry of the same event got there first
    return interaction


def find_event(*, lead_id: int, client_event_id: str) -> Interaction | None:
    """The interaction a client already sent with this id, if any."""
    return Interaction.objects.filter(lead_id=lead_id, client_event_id=client_event_id).first()


def change_status(
    *,
    lead: Lead,
    status: str,
    by: User | None = None,
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


def load_history(
    *, leads: Sequence[Lead], interactions: Sequence[Sequence[Interaction]] = ()
) -> tuple[int, int]:
    """Bulk-load leads with their past interactions and outcomes (seeding, a move from another CRM).

    Set-based: one insert per table, no rescore per row. The caller runs one full recompute
    afterwards (`scoring.services.recompute_all`). `interactions[i]` belongs to `leads[i]`; the
    lifecycle stamps (status_changed_at, closed_at) are the history's own, kept as given, and a
    closed lead without a closing time is stamped with its creation time so training counts it.
    """
    for lead in leads:
        if lead.status in CLOSED_STATUSES and lead.closed_at is None:
            lead.closed_at = lead.status_changed_at or lead.created_at
        if lead.status != LeadStatus.NEW and lead.status_changed_at is None:
            lead.status_changed_at = lead.closed_at or lead.created_at
    with transaction.atomic():
        Lead.objects.bulk_create(leads, batch_size=1000)  # ids come back on PostgreSQL and SQLite
        rows = []
        for lead, history in zip(leads, interactions, strict=False):
            for interaction in history:
                interaction.lead_id = lead.pk
                rows.append(interaction)
        Interaction.objects.bulk_create(rows, batch_size=5000)
    return len(leads), len(rows)


def claim_lead(*, lead: Lead, user: User) -> Lead:
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


def assign_lead(*, lead: Lead, owner: User | None) -> Lead:
    """Give a lead to a salesperson (or nobody); managers only, checked by the caller."""
    lead.owner = owner
    _save_lead(lead, ["owner"])
    return lead


def edit_lead(
    *, lead: Lead, changes: Mapping[str, Any], by: User | None = None, now: datetime | None = None
) -> Lead:
    """Apply a form's or a request's changes: a new status goes through change_status (stamps,
    timeline note), everything else through update_lead; one transaction, one rescore."""
    fields = dict(changes)
    status = fields.pop("status", lead.status)
    lost_reason = str(fields.pop("lost_reason", "") or "")
    fields = {name: value for name, value in fields.items() if getattr(lead, name, object()) != value}
    with transaction.atomic():
        if fields:
            update_lead(lead=lead, now=now, **fields)
        if status != lead.status:
            change_status(lead=lead, status=status, by=by, lost_reason=lost_reason, now=now)
        elif status == LeadStatus.LOST and lost_reason.strip() and lost_reason.strip() != lead.lost_reason:
            update_lead(lead=lead, now=now, lost_reason=lost_reason.strip())
    return lead


def delete_lead(*, lead: Lead) -> None:
    """Delete a lead with its interactions, follow-ups, memberships and score history."""
    lead.delete()


def record_consent(
    *,
    lead: Lead,
    purpose: str,
    granted: bool,
    source: str,
    text: str = "",
    text_version: str = "",
    recorded_by: User | None = None,
    now: datetime | None = None,
) -> Consent:
    """Record consent given or withdrawn (one append-only row) and mirror it on the lead's flag."""
    if purpose not in ConsentPurpose.values:
        raise ValidationError({"purpose": f"Unknown consent purpose {purpose!r}."})
    if source not in ConsentSource.values:
        raise ValidationError(
            {"source": "Say where this consent came from (widget, import, api, salesperson)."}
        )
    if has_nul(text) or has_nul(text_version):
        raise ValidationError({"text": NUL_MESSAGE})
    now = now or timezone.now()
    flag = f"{purpose}_consent"
    with transaction.atomic():
        consent = Consent.objects.create(
            lead=lead,
            purpose=purpose,
            granted=bool(granted),
            text=text,
            text_version=text_version[:50],
            source=source,
            recorded_by=recorded_by,
            recorded_at=now,
        )
        if getattr(lead, flag) != bool(granted) or (granted and getattr(lead, f"{flag}_at") is None):
            setattr(lead, flag, bool(granted))
            setattr(lead, f"{flag}_at", now if granted else None)
            _save_lead(lead, [flag, f"{flag}_at"])
            request_rescore(lead.pk)
    return consent


def mark_live(*, lead_id: int, until: datetime | None) -> None:
    """The lead is in a live chat until `until` (None: the chat ended); no rescore, no stamps."""
    Lead.objects.filter(pk=lead_id).update(live_until=until)


def move_interactions(*, from_lead: Lead, to_lead: Lead) -> int:
    """Move every interaction of one lead to another (the same person), and rescore both."""
    with transaction.atomic():
        moved = Interaction.objects.filter(lead=from_lead).update(lead=to_lead)
        last = from_lead.last_activity_at
        if last is not None:
            Lead.objects.filter(pk=to_lead.pk).update(
                last_activity_at=Greatest(Coalesce(F("last_activity_at"), last), last)
            )
        request_rescore(to_lead.pk)
        request_rescore(from_lead.pk)
    return moved


def update_interaction(
    *, interaction: Interaction, changes: Mapping[str, Any], by: User | None = None
) -> Interaction:
    """Correct a stored interaction (kind, time, channel, payload, sentiment) and rescore its lead."""
    allowed = {"kind", "channel", "occurred_at", "payload", "sentiment"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "This field of an interaction cannot be changed."))
    for name, value in changes.items():
        setattr(interaction, name, value)
    if interaction.occurred_at > timezone.now() + timedelta(minutes=5):
        raise ValidationError({"occurred_at": "An interaction cannot happen in the future."})
    interaction.full_clean(exclude=["lead"], validate_constraints=False)
    _check_interaction_constraints(interaction)
    with transaction.atomic():
        interaction.save(update_fields=sorted(changes) or None)
        request_rescore(interaction.lead_id)
    return interaction


def delete_interactions(*, interactions: Iterable[Interaction]) -> int:
    """Delete interactions and rescore every lead they belonged to."""
    items = list(interactions)
    lead_ids = sorted({i.lead_id for i in items})
    with transaction.atomic():
        deleted, _ = Interaction.objects.filter(pk__in=[i.pk for i in items]).delete()
        for lead_id in lead_ids:
            request_rescore(lead_id)
    return deleted


def add_follow_up(
    *,
    lead: Lead,
    due_at: datetime,
    note: str = "",
    assigned_to: User | None = None,
    created_by: User | None = None,
    now: datetime | None = None,
) -> FollowUp:
    """Create a follow-up task; it must be due in the future."""
    now = now or timezone.now()
    if due_at < now - timedelta(minutes=1):
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


# --- Outcomes: what a salesperson did with a lead ------------------------------------------

# What the form offers → (interaction kind, channel). An email the salesperson sent has no kind of
# its own (EMAIL_REPLY is the lead answering), so it is a note on the email channel.
OUTCOME_KINDS: dict[str, tuple[str, str]] = {
    "call": ("call", Channel.PHONE),
    "email": ("note", Channel.EMAIL),
    "meeting": ("meeting", Channel.IN_PERSON),
    "note": ("note", Channel.OTHER),
}


def log_outcome(
    *,
    lead: Lead,
    by: Any,
    kind: str,
    notes: str = "",
    status: str = "",
    lost_reason: str = "",
    duration_min: int | None = None,
) -> Interaction | None:
    """Record the contact (if any notes or a contact kind) and change the status; one transaction.

    Raises PermissionDenied when `by` may not change the lead, ValidationError on bad input.
    """
    if not can_change_lead(by, lead):
        raise PermissionDenied(
            "Claim this lead before logging outcomes on it."
            if lead.owner_id is None
            else "This lead belongs to someone else."
        )
    if kind not in OUTCOME_KINDS:
        raise ValidationError({"kind": f"Unknown outcome {kind!r}. Use one of: {', '.join(OUTCOME_KINDS)}."})
    interaction_kind, channel = OUTCOME_KINDS[kind]
    payload: dict[str, Any] = {"text": notes.strip(), "outcome": kind}
    if duration_min:
        payload["duration_s"] = int(duration_min) * 60
    with transaction.atomic():
        interaction = None
        if notes.strip() or kind != "note":
            interaction = record_interaction(
                lead=lead, kind=interaction_kind, channel=channel, payload=payload, logged_by=by
            )
            # record_interaction updated the row in SQL; change_status saves the whole object.
            lead.refresh_from_db(fields=["last_activity_at", "rescore_requested_at"])
        if status and status != lead.status:
            change_status(lead=lead, status=status, by=by, lost_reason=lost_reason, note=notes.strip())
        elif not interaction:
            raise ValidationError(
                {"notes": "Write a note or change the status — there is nothing to log yet."}
            )
    return interaction
