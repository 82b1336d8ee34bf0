"""The one writer of leads and interactions: admin, API, pages, chat and imports all call these.

Every function validates first and raises ValidationError on bad input. The next step is called,
not signalled: a change that can move a score calls `scoring.services.request_rescore` (the CRM
core's one call into another app), which queues one rescore after the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from leadcrm.models import (
    CLOSED_STATUSES,
    DEFAULT_CHANNEL,
    EMAIL_UNAVAILABLE,
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
        "erased_at",  # anonymise_leads only
        # Consent times are stamped when a consent is recorded (record_consent, or a flag change
        # that comes with its consent_source).
        "marketing_consent_at",
        "contact_consent_at",
    }
)

# Lead's consent flags and the purpose each one mirrors (the newest Consent row of that purpose).
CONSENT_FLAGS: dict[str, str] = {
    "marketing_consent": ConsentPurpose.MARKETING,
    "contact_consent": ConsentPurpose.CONTACT,
}
CONSENT_SOURCE_MESSAGE = (
    "A consent change needs its source (widget, import, api, salesperson or admin), "
    "so the business can show where it came from."
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
        raise ValidationError({"email": EMAIL_UNAVAILABLE}) from exc


@dataclass(frozen=True)
class ConsentNote:
    """Where a consent change came from: every change of a consent flag is recorded with one."""

    source: str
    text: str = ""
    text_version: str = ""
    recorded_by: User | None = None


def _pop_consent_changes(lead: Lead, fields: dict[str, Any], note: ConsentNote | None) -> dict[str, bool]:
    """Take the consent flags (and any times sent with them) out of `fields`; return the flags
    that change. A change without a known source is refused: no consent without its record."""
    changes: dict[str, bool] = {}
    for flag in CONSENT_FLAGS:
        if flag in fields:
            fields.pop(f"{flag}_at", None)  # sent with its flag: the time is the recording's own
            granted = bool(fields.pop(flag))
            if granted != getattr(lead, flag):
                changes[flag] = granted
    if changes and (note is None or note.source not in ConsentSource.values):
        raise ValidationError(dict.fromkeys(changes, CONSENT_SOURCE_MESSAGE))
    if changes and note is not None and (has_nul(note.text) or has_nul(note.text_version)):
        raise ValidationError({"consent_text": NUL_MESSAGE})
    return changes


def _apply_consent_changes(
    lead: Lead, changes: Mapping[str, bool], note: ConsentNote | None, now: datetime
) -> list[Consent]:
    """Set the flags and their times on `lead`; the Consent rows to store once the lead has an id."""
    rows: list[Consent] = []
    if note is None:  # no changes: _pop_consent_changes refuses a change without a note
        return rows
    for flag, granted in changes.items():
        setattr(lead, flag, granted)
        setattr(lead, f"{flag}_at", now if granted else None)
        rows.append(
            Consent(
                purpose=CONSENT_FLAGS[flag],
                granted=granted,
                text=note.text,
                text_version=note.text_version[:50],
                source=note.source,
                recorded_by=note.recorded_by,
                recorded_at=now,
            )
        )
    return rows


def _store_consents(lead: Lead, rows: list[Consent]) -> None:
    for row in rows:
        row.lead = lead
    Consent.objects.bulk_create(rows)


def _consent_note(source: str, text: str, text_version: str, recorded_by: User | None) -> ConsentNote | None:
    return ConsentNote(source, text, text_version, recorded_by) if source else None


def create_lead(
    *,
    now: datetime | None = None,
    consent_source: str = "",
    consent_text: str = "",
    consent_text_version: str = "",
    recorded_by: User | None = None,
    **fields: Any,
) -> Lead:
    """Validate and store a new lead, then queue its first score.

    Consent flags set here are recorded as Consent rows from `consent_source` (widget, import,
    api, salesperson, admin), with the wording shown and who recorded it; without a source they
    are refused.
    """
    note = _consent_note(consent_source, consent_text, consent_text_version, recorded_by)
    fields = dict(fields)
    consent_changes = _pop_consent_changes(Lead(), fields, note)
    _check_fields(fields)
    now = now or timezone.now()
    if fields.get("email"):
        fields["email"] = str(fields["email"]).strip().lower()
        if Lead.objects.filter(email__iexact=fields["email"]).exists():
            raise ValidationError({"email": EMAIL_UNAVAILABLE})
    lead = Lead(**fields)
    consents = _apply_consent_changes(lead, consent_changes, note, now)
    if lead.status != LeadStatus.NEW:
        lead.status_changed_at = now
        if lead.status in CLOSED_STATUSES:
            lead.closed_at = now
    with transaction.atomic():
        _save_lead(lead)
        _store_consents(lead, consents)
        request_rescore(lead.pk)
    return lead


def update_lead(
    *,
    lead: Lead,
    now: datetime | None = None,
    consent_source: str = "",
    consent_text: str = "",
    consent_text_version: str = "",
    recorded_by: User | None = None,
    **fields: Any,
) -> Lead:
    """Change profile fields of a lead (status goes through change_status) and queue a rescore.

    A consent flag that changes needs `consent_source` and is recorded as a Consent row (given or
    withdrawn); a flag sent with its current value changes nothing and needs no source.
    """
    note = _consent_note(consent_source, consent_text, consent_text_version, recorded_by)
    fields = dict(fields)
    consent_changes = _pop_consent_changes(lead, fields, note)
    _check_fields(fields)
    if "status" in fields:
        raise ValidationError({"status": "Use change_status to move a lead through its lifecycle."})
    now = now or timezone.now()
    if fields.get("email"):
        fields["email"] = str(fields["email"]).strip().lower()
        if Lead.objects.filter(email__iexact=fields["email"]).exclude(pk=lead.pk).exists():
            raise ValidationError({"email": EMAIL_UNAVAILABLE})
    for name, value in fields.items():
        setattr(lead, name, value)
    consents = _apply_consent_changes(lead, consent_changes, note, now)
    changed = {"owner" if name == "owner_id" else name for name in fields}
    changed |= {name for flag in consent_changes for name in (flag, f"{flag}_at")}
    with transaction.atomic():
        _save_lead(lead, changed)
        _store_consents(lead, consents)
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


# Email tracking (opens, clicks) needs marketing consent; replies, bounces and unsubscribes do not.
TRACKING_KINDS = frozenset({InteractionKind.EMAIL_OPEN, InteractionKind.EMAIL_CLICK})
NO_TRACKING_MESSAGE = (
    "This person has not agreed to marketing messages, so email opens and clicks are not tracked "
    "for them. Record their marketing consent first."
)


def _has_marketing_consent(lead: Lead | int) -> bool:
    if isinstance(lead, Lead):
        return lead.marketing_consent
    return Lead.objects.filter(pk=lead, marketing_consent=True).exists()


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
    if kind_value in TRACKING_KINDS and not _has_marketing_consent(lead):
        # Tracking opens and clicks is marketing processing: not without the person's consent.
        raise ValidationError({"kind": NO_TRACKING_MESSAGE}, code="no_consent")
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


IMPORTED_CONSENT_TEXT = "(imported with the lead's history)"


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
        # The consents that came with the history are recorded as imported, one row per flag.
        Consent.objects.bulk_create(
            [
                Consent(
                    lead_id=lead.pk,
                    purpose=purpose,
                    granted=True,
                    text=IMPORTED_CONSENT_TEXT,
                    source=ConsentSource.IMPORT,
                    recorded_at=getattr(lead, f"{flag}_at") or lead.created_at,
                )
                for lead in leads
                for flag, purpose in CONSENT_FLAGS.items()
                if getattr(lead, flag)
            ],
            batch_size=5000,
        )
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
    *,
    lead: Lead,
    changes: Mapping[str, Any],
    by: User | None = None,
    now: datetime | None = None,
    consent_source: str = "",
    consent_text: str = "",
    consent_text_version: str = "",
) -> Lead:
    """Apply a form's or a request's changes: a new status goes through change_status (stamps,
    timeline note), everything else through update_lead; one transaction, one rescore. Consent
    flags that change are recorded from `consent_source` with `by` as who recorded them."""
    fields = dict(changes)
    status = fields.pop("status", lead.status)
    lost_reason = str(fields.pop("lost_reason", "") or "")
    fields = {name: value for name, value in fields.items() if getattr(lead, name, object()) != value}
    with transaction.atomic():
        if fields:
            update_lead(
                lead=lead,
                now=now,
                consent_source=consent_source,
                consent_text=consent_text,
                consent_text_version=consent_text_version,
                recorded_by=by,
                **fields,
            )
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


# --- Erasure: personal data anonymised, the row kept for the counts ---------------------------

ERASED_TEXT = "(erased)"
# Interaction payload keys that say nothing about the person and keep reports and rules right.
KEPT_PAYLOAD_KEYS = ("duration_s", "amount", "outcome", "status_from", "status_to")
ERASE_CHUNK = 500  # ids per statement (SQLite's variable limit)


def anonymise_leads(*, lead_ids: Sequence[int], now: datetime | None = None) -> int:
    """Anonymise these leads, set-based: names, email, phone, company, job title, city, custom
    attributes, visitor id, search term and lost reason on the lead; free text in their interaction
    payloads; their follow-up notes. The rows stay (counts by status, source and stage stay right)
    and are marked `erased_at`. Returns how many leads were changed. Rescoring is the caller's."""
    now = now or timezone.now()
    ids = sorted({int(i) for i in lead_ids})
    changed = 0
    with transaction.atomic():
        for start in range(0, len(ids), ERASE_CHUNK):
            chunk = ids[start : start + ERASE_CHUNK]
            changed += Lead.objects.filter(pk__in=chunk).update(
                first_name="",
                last_name="",
                email=None,
                phone="",
                company_name="",
                job_title="",
                city="",
                custom={},
                visitor_id="",
                utm_term="",
                utm_content="",
                lost_reason=Case(When(lost_reason="", then=Value("")), default=Value(ERASED_TEXT)),
                possible_duplicate_of=None,
                live_until=None,
                erased_at=Coalesce(F("erased_at"), Value(now)),
                updated_at=now,
            )
            _keep_only_payload_keys(chunk)
            FollowUp.objects.filter(lead_id__in=chunk).exclude(note="").update(note="")
    return changed


def _keep_only_payload_keys(lead_ids: Sequence[int]) -> None:
    """One UPDATE: every interaction of these leads keeps only KEPT_PAYLOAD_KEYS of its payload."""
    table = connection.ops.quote_name(Interaction._meta.db_table)
    lead_column = connection.ops.quote_name(Interaction._meta.get_field("lead").column)
    marks = ", ".join(["%s"] * len(lead_ids))
    keys = ", ".join(["%s"] * len(KEPT_PAYLOAD_KEYS))
    if connection.vendor == "postgresql":
        kept = f"(SELECT coalesce(jsonb_object_agg(key, value), '{{}}'::jsonb) FROM jsonb_each(payload) WHERE key IN ({keys}))"
    else:  # SQLite's JSON1
        kept = f"(SELECT coalesce(json_group_object(key, value), '{{}}') FROM json_each(payload) WHERE key IN ({keys}))"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET payload = {kept} WHERE {lead_column} IN ({marks})",
            [*KEPT_PAYLOAD_KEYS, *lead_ids],
        )


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


# --- Website chat: set-based lead removal and hand merge of possible duplicates (chatbot) ---------


def delete_leads(*, lead_ids: Sequence[int]) -> int:
    """Delete these leads with everything that cascades from them, in one set-based delete
    (the chat's purge of empty anonymous chats). Returns how many leads were deleted."""
    ids = [int(i) for i in lead_ids]
    if not ids:
        return 0
    _, per_model = Lead.objects.filter(pk__in=ids).delete()
    return per_model.get(Lead._meta.label, 0)


def merge_possible_duplicate(*, duplicate: Lead, by: User) -> Lead:
    """A salesperson checked that `duplicate` (made by a chat visitor who typed a known lead's
    email) is that person: move its interactions and follow-ups to the known lead, delete
    it. The known lead's own fields, consent and owner are left as they are."""
    target = duplicate.possible_duplicate_of
    if target is None:
        raise ValidationError("This lead is not marked as a possible duplicate.")
    from leadcrm.permissions import can_see_lead

    if not (can_see_lead(by, duplicate) and can_change_lead(by, target)):
        raise PermissionDenied("Only the known lead's owner (or a manager) may merge into it.")
    with transaction.atomic():
        move_interactions(from_lead=duplicate, to_lead=target)
        FollowUp.objects.filter(lead=duplicate).update(lead=target)
        delete_lead(lead=duplicate)  # the caller moved its app's own rows (e.g. chats) first
    return target
