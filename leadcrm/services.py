"""The one writer of leads and interactions: admin, API, pages, chat and imports all call these.

Every function validates first and raises ValidationError on bad input. The next step is called,
not signalled: a change that can move a score calls `scoring.services.request_rescore` (the CRM
core's one call into another app), which queues one rescore after the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.contrib.auth.models import User
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from config.on_commit import enqueue_once_on_commit
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
    RecordedActivity,
    Segment,
    SegmentKind,
    SegmentMembership,
    StaffProfile,
    has_nul,
)
from leadcrm.permissions import can_change_lead
from leadcrm.segments import criteria_q
from leadcrm.signals import lead_created, lead_status_changed, leads_erased, leads_imported
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
# Clocks differ: a sender's "now" may be a little ahead of ours. A time from outside (pages, API,
# imports, tracking, chat, seeds) may lie at most this far after now: the one rule for all of them.
FUTURE_SLACK = timedelta(minutes=5)


def is_future(when: datetime, *, now: datetime | None = None) -> bool:
    """Whether `when` is later than now plus FUTURE_SLACK (a time nothing may store)."""
    return when > (now or timezone.now()) + FUTURE_SLACK


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
        lead_created.send(sender=Lead, lead=lead)  # in the transaction: webhooks store their events with it
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
    if is_future(occurred_at, now=now):
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
        lead_status_changed.send(sender=Lead, lead=lead, status_from=previous, status_to=status)
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
    A time after now (beyond FUTURE_SLACK) is refused: history cannot happen in the future.
    """
    _refuse_future_history(leads, interactions, now=timezone.now())
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


HISTORY_LEAD_TIMES = ("created_at", "last_activity_at", "status_changed_at", "qualified_at", "closed_at")


def _refuse_future_history(
    leads: Sequence[Lead], interactions: Sequence[Sequence[Interaction]], *, now: datetime
) -> None:
    for i, lead in enumerate(leads):
        for name in HISTORY_LEAD_TIMES:
            value = getattr(lead, name)
            if value is not None and is_future(value, now=now):
                raise ValidationError(
                    {name: f"Lead {i + 1} ({lead.email or 'no email'}): {name} is in the future."}
                )
    for i, history in enumerate(interactions):
        for interaction in history:
            if is_future(interaction.occurred_at, now=now):
                raise ValidationError(
                    {"occurred_at": f"Lead {i + 1}: an interaction cannot happen in the future."}
                )


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
    and are marked `erased_at`. Returns how many leads were changed. Rescoring is the caller's.
    `leadcrm.signals.leads_erased` tells the apps above (the website tracking), in the transaction."""
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
            FollowUp.objects.filter(lead_id__in=chunk).exclude(note="").update(note="", updated_at=now)
            # In the transaction: the website tracking deletes the leads' visitor links with it.
            leads_erased.send(sender=Lead, lead_ids=chunk)
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
    if is_future(interaction.occurred_at):
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
    """Create a follow-up task, due in the future and never without an owner: the one given, else
    the lead's owner, else whoever makes the promise, else the routing rule's (`follow_up_owner`)."""
    now = now or timezone.now()
    if due_at < now - timedelta(minutes=1):
        raise ValidationError({"due_at": "A follow-up must be due in the future."})
    if assigned_to is not None and not assigned_to.is_active:
        raise ValidationError({"assigned_to": "This person no longer works here: pick someone else."})
    follow_up = FollowUp(
        lead=lead,
        due_at=due_at,
        note=note.strip(),
        assigned_to=assigned_to or follow_up_owner(lead=lead, created_by=created_by, now=now),
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
        follow_up.save(update_fields=["done_at", "updated_at"])
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
        segment.save(update_fields=["refreshed_at", "updated_at"])
    return SegmentMembership.objects.filter(segment=segment).count()


def leads_matching(criteria: Mapping[str, Any]) -> Q:
    """Q for leads matching segment-style criteria (validated)."""
    return criteria_q(dict(criteria))


# --- Outcomes: what a salesperson did with a lead ------------------------------------------

# What the form offers → (interaction kind, channel). "email" is an email the salesperson sent
# (EMAIL_SENT; EMAIL_REPLY is the lead answering).
OUTCOME_KINDS: dict[str, tuple[str, str]] = {
    "call": ("call", Channel.PHONE),
    "email": ("email_sent", Channel.EMAIL),
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
    return merge_same_person(duplicate=duplicate, into=target)


def merge_same_person(*, duplicate: Lead, into: Lead) -> Lead:
    """Move `duplicate`'s interactions and follow-ups to `into` and delete it; `into`'s own fields,
    consent and owner are left as they are. The caller has established that both are the same
    person (a salesperson in merge_possible_duplicate; the chat, once the visitor typed the one-time
    code sent to `into`'s email) and has moved its app's own rows (e.g. chats) first."""
    with transaction.atomic():
        move_interactions(from_lead=duplicate, to_lead=into)
        FollowUp.objects.filter(lead=duplicate).update(lead=into, updated_at=timezone.now())
        delete_lead(lead=duplicate)
    return into


# --- Segments and follow-ups through the REST API (api) ---------------------------------------

FOLLOW_UP_EDITABLE = frozenset({"due_at", "note", "assigned_to"})


def save_segment(*, segment: Segment, by: User | None = None) -> Segment:
    """Validate and store a segment (a new one records who made it); a dynamic one is refreshed
    from its criteria at once, in the same transaction."""
    if segment.pk is None and segment.created_by is None:
        segment.created_by = by
    segment.full_clean()
    with transaction.atomic():
        segment.save()
        if segment.kind == SegmentKind.DYNAMIC:
            refresh_dynamic_segment(segment=segment)
    return segment


def delete_segment(*, segment: Segment) -> None:
    """Delete a segment with its memberships (the leads stay)."""
    segment.delete()


def change_members(
    *, segment: Segment, add: Iterable[int] = (), remove: Iterable[int] = (), now: datetime | None = None
) -> tuple[int, int]:
    """Add and remove leads of a static segment; returns (added, removed). The segment's
    updated_at moves when its members change, so a syncing system knows to read them again."""
    add_ids, remove_ids = {int(i) for i in add}, {int(i) for i in remove}
    if segment.kind != SegmentKind.STATIC:
        raise ValidationError("Dynamic segments are computed from their criteria; edit those instead.")
    if add_ids & remove_ids:
        raise ValidationError("A lead cannot be both added to and removed from a segment at once.")
    with transaction.atomic():
        added = add_to_segment(segment=segment, leads=add_ids) if add_ids else 0
        removed, _ = SegmentMembership.objects.filter(segment=segment, lead_id__in=remove_ids).delete()
        if added or removed:
            Segment.objects.filter(pk=segment.pk).update(updated_at=now or timezone.now())
    return added, removed


def update_follow_up(
    *, follow_up: FollowUp, changes: Mapping[str, Any], now: datetime | None = None
) -> FollowUp:
    """Reschedule, reword or reassign an open follow-up; a new due time must be in the future."""
    unknown = sorted(set(changes) - FOLLOW_UP_EDITABLE)
    if unknown:
        raise ValidationError(dict.fromkeys(unknown, "This field of a follow-up cannot be changed."))
    if follow_up.done_at is not None:
        raise ValidationError("This follow-up is done; schedule a new one instead.")
    now = now or timezone.now()
    due_at = changes.get("due_at", follow_up.due_at)
    if due_at != follow_up.due_at and due_at < now - timedelta(minutes=1):
        raise ValidationError({"due_at": "A follow-up must be due in the future."})
    if "assigned_to" in changes:
        owner = changes["assigned_to"]
        if owner is None:
            raise ValidationError({"assigned_to": "A follow-up needs an owner: pick who does it."})
        if not owner.is_active:
            raise ValidationError({"assigned_to": "This person no longer works here: pick someone else."})
        if owner.pk != follow_up.assigned_to_id:
            follow_up.overdue_alerted_at = None  # the new owner is told if it is overdue
    if due_at != follow_up.due_at:
        follow_up.overdue_alerted_at = follow_up.escalated_at = None  # a new promise: a new clock
    for name, value in changes.items():
        setattr(follow_up, name, value.strip() if name == "note" else value)
    follow_up.full_clean()
    follow_up.save()
    return follow_up


def delete_follow_up(*, follow_up: FollowUp) -> None:
    """Delete a follow-up (scheduled by mistake)."""
    follow_up.delete()


# --- Bulk import (dataio): many rows validated as create_lead does, written set-based -------------

import contextlib  # noqa: E402  (this section's own imports)
import json  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from leadcrm.models import EARLIEST_INTERACTION, json_problem  # noqa: E402

IMPORT_CHUNK = 2000  # rows per email lookup and per INSERT/UPDATE batch
# What an import may set directly; status and lost reason come with an outcome (won/lost + date),
# custom attributes in `custom`, the owner by username or email. The rest is the system's own.
IMPORT_FIELDS = frozenset(
    LEAD_WRITABLE_FIELDS
    - {"status", "lost_reason", "custom", "owner", "owner_id", "visitor_id", "possible_duplicate_of"}
)
IMPORT_OUTCOMES = (LeadStatus.WON, LeadStatus.LOST)
IMPORTED_OUTCOME_NOTE = "Outcome imported"


@dataclass
class ImportRow:
    """One row of an import, already converted from text to typed values (by the caller's mapping)."""

    line: int  # where it is in the file, for the person who fixes it
    fields: dict[str, Any]  # IMPORT_FIELDS only; a blank value is left out (a default, or the current value)
    custom: dict[str, Any] | None = None
    owner: str = ""  # username or email of a user
    outcome: str = ""  # "won" or "lost": the lead's past outcome, so the model can learn from it
    outcome_at: datetime | None = None
    lost_reason: str = ""
    problem: str = ""  # set by the caller when the text could not be converted: the row is refused


@dataclass
class RowOutcome:
    line: int
    action: str  # "create", "update", "skip" or "refuse"
    reason: str = ""
    lead_id: int | None = None


class ImportResult:
    """What an import did (or, in a dry run, would do) with each row."""

    def __init__(self) -> None:
        self.rows: list[RowOutcome] = []
        self.consents = 0  # Consent rows written
        self.outcomes = 0  # leads closed as won or lost from the file
        # Written once after the leads: one COPY each (interleaved with the leads' they were
        # measured slower, the consent rows' audit triggers growing with the transaction).
        self.pending_consents: list[Consent] = []
        self.pending_notes: list[Interaction] = []

    def count(self, action: str) -> int:
        return sum(1 for row in self.rows if row.action == action)

    @property
    def lead_ids(self) -> list[int]:
        """The leads created or changed: the caller rescores them."""
        return [r.lead_id for r in self.rows if r.lead_id is not None and r.action in ("create", "update")]

    @property
    def refused(self) -> list[RowOutcome]:
        return [row for row in self.rows if row.action == "refuse"]


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        parts = []
        for name, errors in exc.error_dict.items():
            label = "" if name == NON_FIELD_ERRORS else f"{name}: "
            parts.append(label + " ".join(str(m) for e in errors for m in e.messages))
        return "; ".join(parts)
    return " ".join(exc.messages)


_LEAD_FIELDS = {f.name: f for f in Lead._meta.concrete_fields}


def _plain_text_check(model_field: Any) -> Any:
    """For a plain CharField (no choices, Django's default validators only): the same checks as
    Field.clean, with the same messages, as two comparisons instead of a validator chain; the
    import runs them a million times."""
    from django.core import validators
    from django.db.models import CharField

    if type(model_field) is not CharField or model_field.choices:
        return None
    kinds = {type(v) for v in model_field.validators}
    if kinds - {validators.MaxLengthValidator, validators.ProhibitNullCharactersValidator}:
        return None
    limit = model_field.max_length

    def check(value: Any) -> str:
        value = value if isinstance(value, str) else str(value)
        if limit is not None and len(value) > limit:
            raise ValidationError(f"Ensure this value has at most {limit} characters (it has {len(value)}).")
        if "\x00" in value:
            raise ValidationError("Null characters are not allowed.")
        return value

    return check


_FAST_CHECKS = {name: check for name, f in _LEAD_FIELDS.items() if (check := _plain_text_check(f))}
_LEAD_DEFAULTS: dict[str, Any] = {}


def _new_lead(values: Mapping[str, Any]) -> Lead:
    """Lead(**values) for plain field values, without Model.__init__'s per-field work (a tenth of
    the time; an import builds a hundred thousand): the defaults are copied from one blank Lead."""
    from django.db.models.base import ModelState

    if not _LEAD_DEFAULTS:
        _LEAD_DEFAULTS.update((k, v) for k, v in Lead().__dict__.items() if k != "_state")
    lead = Lead.__new__(Lead)
    lead._state = ModelState()
    lead.__dict__.update(_LEAD_DEFAULTS)
    lead.__dict__.update(values)  # import fields have no foreign keys: name == attname
    lead.score_breakdown, lead.ml_factors = [], []
    return lead


def _clean_import_row(row: ImportRow, now: datetime) -> tuple[Lead | None, str]:
    """The row as an unsaved Lead, checked with create_lead's rules (field validators, choices and
    lengths, then Lead.clean: email, country, time zone, lost reason, custom), without a query."""
    if row.problem:
        return None, row.problem
    unknown = sorted(set(row.fields) - IMPORT_FIELDS)
    if unknown:
        return None, f"{', '.join(unknown)}: not a field an import may set."
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, value in row.fields.items():
        if value is None or value == "":
            continue
        try:
            fast = _FAST_CHECKS.get(name)
            values[name] = fast(value) if fast is not None else _LEAD_FIELDS[name].clean(value, None)
        except ValidationError as exc:
            errors[name] = exc.messages
    if errors:
        # As full_clean does: the model's own checks run too, for their clearer messages.
        try:
            _new_lead({**values, **{n: row.fields[n] for n in errors}}).clean()
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                errors[name] = [*messages, *(m for m in errors.get(name, []) if m not in messages)]
        return None, _messages(ValidationError(errors))
    custom = dict(row.custom or {})
    if problem := json_problem(custom):
        return None, f"custom: {problem}"
    created = values.get("created_at")
    if created is not None and is_future(created, now=now):
        return None, "created_at: a lead cannot be created in the future."
    lead = _new_lead(values)
    lead.custom = custom
    if row.outcome:
        if row.outcome not in IMPORT_OUTCOMES:
            return None, f"outcome: use won or lost, not {row.outcome!r}."
        when = row.outcome_at
        if when is None:
            return None, "outcome_date: say when the lead was won or lost."
        if is_future(when, now=now) or when < EARLIEST_INTERACTION:
            return None, "outcome_date: the date must be between 1970 and today."
        lead.status = row.outcome
        lead.lost_reason = row.lost_reason.strip() if row.outcome == LeadStatus.LOST else ""
        try:
            _LEAD_FIELDS["lost_reason"].clean(lead.lost_reason, None)  # length, NUL
        except ValidationError as exc:
            return None, "lost_reason: " + " ".join(exc.messages)
    try:
        lead.clean()
    except ValidationError as exc:
        return None, _messages(exc)
    return lead, ""


def _stamp_outcome(lead: Lead, when: datetime) -> None:
    """change_status's stamps, at the outcome's own time (a past outcome keeps its date)."""
    lead.status_changed_at = when
    lead.closed_at = when
    if lead.created_at is None or lead.created_at > when:
        lead.created_at = when  # known before it closed: training describes it as of closed_at


def _outcome_note(lead: Lead, previous: str, when: datetime, by: User | None, now: datetime) -> Interaction:
    return Interaction(
        lead_id=lead.pk,
        kind=InteractionKind.NOTE,
        channel=Channel.OTHER,
        occurred_at=when,
        payload={
            "text": IMPORTED_OUTCOME_NOTE,
            "status_from": previous,
            "status_to": lead.status,
            "lost_reason": lead.lost_reason,
        },
        logged_by=by,
        created_at=now,
    )


def _consent_rows(lead: Lead, old: Mapping[str, bool], note: ConsentNote, now: datetime) -> list[Consent]:
    """Mirror each consent flag that differs from `old` (a new lead: all False) with a Consent row."""
    rows = []
    for flag, purpose in CONSENT_FLAGS.items():
        granted = bool(getattr(lead, flag))
        if granted == old.get(flag, False):
            continue
        setattr(lead, f"{flag}_at", now if granted else None)
        rows.append(
            Consent(
                lead_id=lead.pk,
                purpose=purpose,
                granted=granted,
                text=note.text,
                text_version=note.text_version[:50],
                source=note.source,
                recorded_by=note.recorded_by,
                recorded_at=now,
            )
        )
    return rows


def import_leads(
    *,
    rows: Sequence[ImportRow],
    on_duplicate: str = "skip",
    dry_run: bool = False,
    consent_source: str = ConsentSource.IMPORT,
    consent_text: str = "",
    recorded_by: User | None = None,
    now: datetime | None = None,
    progress: Any = None,
) -> ImportResult:
    """Create or update many leads at once, each row checked with create_lead's rules.

    A row whose email a lead already has is updated (blank cells leave values as they are; custom
    attributes are merged) or skipped, as `on_duplicate` says; an email seen earlier in the same
    file is refused. Refused rows are reported with their line and reason, the others written
    set-based: one email lookup per chunk, bulk inserts and updates, consent rows (recorded from
    `consent_source`) and outcome notes in bulk. `dry_run` checks and reports without writing.
    `progress(done)` is called after each chunk. Rescoring is the caller's: it gets `lead_ids`
    (`scoring.services.rescore_leads`, as after `load_history`). After each chunk's writes,
    `leadcrm.signals.leads_imported` tells the apps above (webhooks) which leads it created and
    whose status (outcome) it changed, in this transaction.
    """
    if on_duplicate not in ("update", "skip"):
        raise ValidationError({"on_duplicate": "Choose update or skip for emails already in LeadCRM."})
    if consent_source not in ConsentSource.values:
        raise ValidationError({"consent_source": CONSENT_SOURCE_MESSAGE})
    now = now or timezone.now()
    note = ConsentNote(consent_source, consent_text or "(imported)", "", recorded_by)
    owners = _import_owners({row.owner.strip().lower() for row in rows if row.owner.strip()})
    result = ImportResult()
    first_line: dict[str, int] = {}
    with transaction.atomic(), _constraints_checked_per_statement():
        for start in range(0, len(rows), IMPORT_CHUNK):
            chunk = rows[start : start + IMPORT_CHUNK]
            _import_chunk(chunk, result, first_line, owners, on_duplicate, dry_run, note, now)
            if progress is not None:
                progress(start + len(chunk))
        _insert_rows(Consent, result.pending_consents)
        _insert_rows(Interaction, result.pending_notes)
        result.consents, result.outcomes = len(result.pending_consents), len(result.pending_notes)
        result.pending_consents, result.pending_notes = [], []
    return result


@contextlib.contextmanager
def _constraints_checked_per_statement() -> Iterator[None]:
    """Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: every row's check waits for the
    commit, and PostgreSQL scans that growing queue after each statement, which includes each
    INSERT a row trigger makes (the audit trail's, one per consent row): quadratic, 97 s instead
    of 5 s for 50,000 consent rows. Checked at the end of each statement, the work is linear; the
    rows are written parents first, so no check fails that would pass at commit."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    try:
        yield
    finally:
        if not connection.needs_rollback:
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # Django's own default again


def _import_owners(names: set[str]) -> dict[str, int]:
    """username or email (lower case) → user id, in one query."""
    if not names:
        return {}
    found: dict[str, int] = {}
    match = Q()
    for name in names:
        match |= Q(username__iexact=name) | Q(email__iexact=name)
    users = User.objects.filter(match, is_active=True)
    for pk, username, email in users.values_list("pk", "username", "email"):
        found[username.lower()] = pk
        if email:
            found.setdefault(email.lower(), pk)
    return found


def _import_chunk(
    chunk: Sequence[ImportRow],
    result: ImportResult,
    first_line: dict[str, int],
    owners: Mapping[str, int],
    on_duplicate: str,
    dry_run: bool,
    note: ConsentNote,
    now: datetime,
) -> None:
    checked: list[tuple[ImportRow, Lead, RowOutcome]] = []
    for row in chunk:
        lead, problem = _clean_import_row(row, now)
        outcome = RowOutcome(row.line, "refuse", problem)
        result.rows.append(outcome)
        if lead is None:
            continue
        if row.owner.strip():
            owner_id = owners.get(row.owner.strip().lower())
            if owner_id is None:
                outcome.reason = "owner: no active user with this username or email."
                continue
            lead.owner_id = owner_id
        if lead.email:
            seen = first_line.get(lead.email)
            if seen is not None:
                outcome.reason = (
                    f"email: the same email is on line {seen} of this file; only that row is imported."
                )
                continue
            first_line[lead.email] = row.line
        checked.append((row, lead, outcome))
    emails = [lead.email for _, lead, _ in checked if lead.email]
    existing: dict[str, Lead] = {}
    if emails:
        from django.db.models.functions import Lower

        mapped = {name for row, _, _ in checked for name in row.fields}
        load = {
            "id",
            "email",
            "status",
            "custom",
            "lost_reason",
            "status_changed_at",
            "closed_at",
            "created_at",
            *CONSENT_FLAGS,
            *(f"{flag}_at" for flag in CONSENT_FLAGS),
            *mapped,
            "owner",
        }
        # One query on the lower(email) unique index finds which emails are known; only those
        # leads are loaded (none, for a first import).
        known = Lead.objects.alias(email_ci=Lower("email")).filter(email_ci__in=emails)
        ids = list(known.values_list("pk", flat=True))
        for lead in Lead.objects.filter(pk__in=ids).only(*load) if ids else ():
            existing[str(lead.email).lower()] = lead
    new: list[tuple[ImportRow, Lead, RowOutcome]] = []
    changed: list[tuple[ImportRow, Lead, RowOutcome, Lead]] = []
    for row, lead, outcome in checked:
        current = existing.get(lead.email or "")
        if current is None:
            outcome.action, outcome.reason = "create", ""
            new.append((row, lead, outcome))
        elif on_duplicate == "skip":
            outcome.action, outcome.lead_id = "skip", current.pk
            outcome.reason = "email already in LeadCRM; skipped, as chosen."
        else:
            outcome.action, outcome.reason, outcome.lead_id = "update", "", current.pk
            changed.append((row, lead, outcome, current))
    if dry_run:
        return
    _insert_new(new, result, note, now)
    status_changes = _update_existing(changed, result, note, now)
    if new or status_changes:
        # In the import's transaction, once per chunk: webhooks store their events set-based with it.
        leads_imported.send(
            sender=Lead, created=[lead.pk for _, lead, _ in new], status_changes=status_changes
        )


def _insert_new(
    new: Sequence[tuple[ImportRow, Lead, RowOutcome]], result: ImportResult, note: ConsentNote, now: datetime
) -> None:
    leads = []
    for row, lead, _ in new:
        if not row.fields.get("created_at"):
            lead.created_at = now
        lead.updated_at = now
        if lead.status in IMPORT_OUTCOMES and row.outcome_at is not None:
            _stamp_outcome(lead, row.outcome_at)
        for flag in CONSENT_FLAGS:  # recorded below as Consent rows from the import's source
            setattr(lead, f"{flag}_at", now if getattr(lead, flag) else None)
        leads.append(lead)
    _insert_rows(Lead, leads, with_ids=True)
    consents: list[Consent] = []
    notes: list[Interaction] = []
    for row, lead, outcome in new:
        outcome.lead_id = lead.pk
        consents.extend(_consent_rows(lead, {}, note, now))
        if lead.status in IMPORT_OUTCOMES and row.outcome_at is not None:
            notes.append(_outcome_note(lead, LeadStatus.NEW, row.outcome_at, note.recorded_by, now))
    result.pending_consents.extend(consents)
    result.pending_notes.extend(notes)


def _insert_rows(model: Any, objs: Sequence[Any], *, with_ids: bool = False) -> None:
    """Insert model instances set-based: COPY on PostgreSQL (ids drawn from the table's sequence
    first when `with_ids`, and set on the objects), bulk_create elsewhere. Row and statement
    triggers (the audit trail) fire for COPY as for INSERT."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=500)  # SQLite returns the ids too
        return
    meta = model._meta
    fields = [f for f in meta.concrete_fields if with_ids or not f.primary_key]
    table = connection.ops.quote_name(meta.db_table)
    with connection.cursor() as cursor:
        if with_ids:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(objs)],
            )
            for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
                obj.pk = pk
        names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        json_at = [i for i, f in enumerate(fields) if f.get_internal_type() == "JSONField"]
        attnames = [f.attname for f in fields]
        with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for obj in objs:
                values = [getattr(obj, name) for name in attnames]
                for i in json_at:  # JSON as text: COPY parses it into jsonb (no custom encoders here)
                    value = values[i]
                    values[i] = "{}" if value == {} else "[]" if value == [] else json.dumps(value)
                copy.write_row(values)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = "default"


def _update_existing(
    changed: Sequence[tuple[ImportRow, Lead, RowOutcome, Lead]],
    result: ImportResult,
    note: ConsentNote,
    now: datetime,
) -> list[tuple[int, str, str]]:
    """Write the changes of existing leads; returns (lead_id, status_from, status_to) of each lead
    whose status the import changed (its outcome)."""
    if not changed:
        return []
    fields: set[str] = {"updated_at"}
    status_changes: list[tuple[int, str, str]] = []
    consents: list[Consent] = []
    notes: list[Interaction] = []
    targets = []
    for row, lead, _, current in changed:
        old_flags = {flag: bool(getattr(current, flag)) for flag in CONSENT_FLAGS}
        for name in row.fields:
            if name in ("email", "created_at") or name not in lead.__dict__ or row.fields[name] in (None, ""):
                continue  # blank cells leave the stored value; the email is the key
            setattr(current, name, getattr(lead, name))
            fields.add(name)
        if row.custom:
            current.custom = {**(current.custom or {}), **lead.custom}  # new columns join the old
            fields.add("custom")
        if row.owner.strip():
            current.owner_id = lead.owner_id
            fields.add("owner")
        flag_rows = _consent_rows(current, old_flags, note, now)
        if flag_rows:
            fields.update(f"{flag}_at" for flag in CONSENT_FLAGS)
        consents.extend(flag_rows)
        if lead.status in IMPORT_OUTCOMES and row.outcome_at is not None and current.status != lead.status:
            previous = current.status
            current.status, current.lost_reason = lead.status, lead.lost_reason
            current.status_changed_at = current.closed_at = row.outcome_at
            fields.update(("status", "lost_reason", "status_changed_at", "closed_at"))
            notes.append(_outcome_note(current, previous, row.outcome_at, note.recorded_by, now))
            status_changes.append((current.pk, previous, current.status))
        current.updated_at = now
        targets.append(current)
    Lead.objects.bulk_update(targets, sorted(fields), batch_size=500)
    result.pending_consents.extend(consents)
    result.pending_notes.extend(notes)
    return status_changes


# --- Bulk events (tracking: the batch events API and the website snippet) ---------------------
# Set-based: one read of the leads, one INSERT … ON CONFLICT DO NOTHING for up to MAX_BULK_EVENTS
# rows and one outbox row (RecordedActivity); apply_recorded_activity then moves the leads' last
# activity and requests their rescore for many batches at once.

MAX_BULK_EVENTS = 1000
_KIND_VALUES = frozenset(InteractionKind.values)
MAX_EVENT_ID_CHARS = 100
ERASED_EVENT_MESSAGE = "This person's data was erased; no events are recorded for them."


class BulkEvent(NamedTuple):
    """One event for record_interactions_bulk (kind as an InteractionKind value). A named tuple:
    a 1,000-event batch makes 1,000 of them per request."""

    lead_id: int
    kind: int
    occurred_at: datetime
    client_event_id: str
    payload: Mapping[str, Any]
    channel: str = ""


@dataclass
class BulkResult:
    """What happened to each event, by its index in the call: stored, duplicate or refused (why)."""

    stored: list[int]
    duplicates: list[int]
    refused: dict[int, str]


def _clean_text(text: str) -> bool:
    return "\x00" not in text and (text.isascii() or not any("\ud800" <= c <= "\udfff" for c in text))


def _flat_and_clean(payload: dict) -> bool:
    """True for the common payload json_problem would pass: one level of text, numbers, booleans
    and nulls (a fast path for 1,000 events a call; anything else takes json_problem)."""
    for key, value in payload.items():
        if not (isinstance(key, str) and _clean_text(key)):
            return False
        if isinstance(value, str):
            if not _clean_text(value):
                return False
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                return False
        elif not (value is None or isinstance(value, int)):
            return False
    return True


def _event_problem(
    kind: int, occurred_at: datetime, client_event_id: Any, payload: Any, latest: datetime
) -> str | None:
    """Why record_interactions_bulk refuses this event (None: it does not), in a sentence.
    Positional and without per-call imports: it runs once per event of every batch."""
    if kind not in _KIND_VALUES:
        return f"Unknown interaction kind {kind!r}."
    if not isinstance(client_event_id, str) or not 0 < len(client_event_id) <= MAX_EVENT_ID_CHARS:
        return f"event_id must be text of 1 to {MAX_EVENT_ID_CHARS} characters."
    if "\x00" in client_event_id:
        return NUL_MESSAGE
    if occurred_at.tzinfo is None:
        return "occurred_at needs a time zone, e.g. 2026-05-01T09:30:00Z."
    if occurred_at < EARLIEST_INTERACTION:
        return "An interaction cannot be dated before 1970."
    if occurred_at > latest:
        return "An interaction cannot happen in the future."
    if not isinstance(payload, dict):
        return 'payload must be an object, e.g. {"url": "/pricing"}.'
    if not _flat_and_clean(payload) and (problem := json_problem(payload)):
        return problem
    amount = payload.get("amount")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0):
        return "amount must be a number ≥ 0."
    return None


def record_interactions_bulk(*, events: Sequence[BulkEvent], now: datetime | None = None) -> BulkResult:
    """Store many events at once, each at most once per (lead, client_event_id); never drops one
    silently: every index comes back stored, duplicate or refused with the reason. Email opens
    and clicks are refused without marketing consent (as in record_interaction)."""
    if len(events) > MAX_BULK_EVENTS:
        raise ValidationError({"events": f"At most {MAX_BULK_EVENTS} events per call."})
    now = now or timezone.now()
    result = BulkResult(stored=[], duplicates=[], refused={})
    lead_ids = {e.lead_id for e in events}
    leads = {
        pk: (consent, erased)
        for pk, consent, erased in Lead.objects.filter(pk__in=lead_ids).values_list(
            "pk", "marketing_consent", "erased_at"
        )
    }
    first_of: dict[tuple[int, str], int] = {}
    todo: list[int] = []
    latest_allowed = now + FUTURE_SLACK
    for i, event in enumerate(events):
        problem = _event_problem(
            event.kind, event.occurred_at, event.client_event_id, event.payload, latest_allowed
        )
        lead = leads.get(event.lead_id)
        if problem is None and lead is None:
            problem = f"Lead {event.lead_id} does not exist."
        elif problem is None and lead is not None and lead[1] is not None:
            problem = ERASED_EVENT_MESSAGE
        elif problem is None and lead is not None and event.kind in TRACKING_KINDS and not lead[0]:
            problem = NO_TRACKING_MESSAGE
        if problem is not None:
            result.refused[i] = problem
            continue
        key = (event.lead_id, event.client_event_id)
        if key in first_of:
            result.duplicates.append(i)  # the same event twice in one call
            continue
        first_of[key] = i
        todo.append(i)
    if not todo:
        return result
    batch = [events[i] for i in todo]
    with transaction.atomic():
        not_inserted = _insert_events(batch, now)  # positions in `batch` already stored earlier
        latest: dict[int, datetime] = {}
        for j, i in enumerate(todo):
            e = events[i]
            if j not in not_inserted:
                result.stored.append(i)
                if e.lead_id not in latest or e.occurred_at > latest[e.lead_id]:
                    latest[e.lead_id] = e.occurred_at
            else:
                result.duplicates.append(i)  # stored by an earlier call (a retried batch)
        if latest:
            # The leads' last activity and rescore request go through an outbox row written with
            # the events: no lead row is locked or updated here, so concurrent batches over the
            # same leads never queue behind each other, and one task applies many batches at once.
            RecordedActivity.objects.create(
                touched=[[lead_id, at.isoformat()] for lead_id, at in sorted(latest.items())], created_at=now
            )
            # A worker applies the batches of the next half second together.
            enqueue_once_on_commit(APPLY_ACTIVITY_TASK, key=APPLY_ACTIVITY_NUDGE, seconds=10, countdown=0.5)
    result.duplicates.sort()
    return result


APPLY_ACTIVITY_TASK = "leadcrm.tasks.apply_recorded_activity"
APPLY_ACTIVITY_NUDGE = "leadcrm:apply-activity-nudged"
APPLY_ACTIVITY_ROWS = 500  # outbox rows per transaction


def apply_recorded_activity(*, max_rounds: int = 20) -> tuple[int, bool]:
    """Apply waiting RecordedActivity rows: each lead's last activity moves to its newest event and
    one rescore request is made per lead, set-based, for up to APPLY_ACTIVITY_ROWS rows (batches)
    per transaction. Rows being applied by another worker are skipped, not waited for. Returns
    (leads updated, whether rows are left after max_rounds)."""
    leads_done = 0
    for _ in range(max_rounds):
        with transaction.atomic():
            rows = list(
                RecordedActivity.objects.select_for_update(skip_locked=True)
                .order_by("id")
                .values_list("id", "touched")[:APPLY_ACTIVITY_ROWS]
            )
            if not rows:
                return leads_done, False
            latest: dict[int, datetime] = {}
            for _, touched in rows:
                for lead_id, at_text in touched:
                    at = datetime.fromisoformat(at_text)
                    if lead_id not in latest or at > latest[lead_id]:
                        latest[lead_id] = at
            # Row locks in id order: two appliers (or an applier and a lead edit) never deadlock.
            present = list(
                Lead.objects.filter(pk__in=latest)
                .order_by("pk")
                .select_for_update(no_key=True)
                .values_list("pk", flat=True)
            )
            if present:
                _bump_last_activity({lead_id: latest[lead_id] for lead_id in present})
                request_rescore(present)  # set-based: one statement per 5,000 leads
            RecordedActivity.objects.filter(pk__in=[row_id for row_id, _ in rows]).delete()
            leads_done += len(present)
    return leads_done, RecordedActivity.objects.exists()


def _insert_events(events: Sequence[BulkEvent], now: datetime) -> set[int]:
    """INSERT the events (ON CONFLICT DO NOTHING); returns the positions that were not inserted
    because the same (lead, client_event_id) was stored by an earlier call."""
    import json  # this section's own import

    table = Interaction._meta.db_table
    columns = "lead_id, kind, channel, occurred_at, payload, created_at, client_event_id"
    channels = [e.channel or DEFAULT_CHANNEL[int(e.kind)] for e in events]
    if connection.vendor == "postgresql":
        # The whole batch as one JSON document unpacked by the server (json_to_recordset): one
        # parameter to quote instead of seven arrays of 1,000 items dumped and escaped in Python.
        # Only the rows that were *not* inserted come back (usually none).
        doc = json.dumps(
            [
                [e.lead_id, int(e.kind), channel, e.occurred_at.isoformat(), e.payload, e.client_event_id]
                for e, channel in zip(events, channels, strict=True)
            ],
            separators=(",", ":"),
        )
        sql = (
            "WITH u AS MATERIALIZED (SELECT (r->>0)::bigint AS l, (r->>1)::smallint AS k, r->>2 AS c, "
            "(r->>3)::timestamptz AS o, r->4 AS p, r->>5 AS e, n - 1 AS n "
            "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS a(r, n)), "
            f"ins AS (INSERT INTO {table} ({columns}) SELECT l, k, c, o, p, %s, e FROM u "
            "ON CONFLICT DO NOTHING RETURNING lead_id, client_event_id) "
            "SELECT u.n FROM u WHERE NOT EXISTS "
            "(SELECT 1 FROM ins WHERE ins.lead_id = u.l AND ins.client_event_id = u.e)"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [doc, now])
            return {int(row[0]) for row in cursor.fetchall()}
    adapt = connection.ops.adapt_datetimefield_value
    created = adapt(now)
    params: list[Any] = []
    for e, channel in zip(events, channels, strict=True):
        params += [
            e.lead_id,
            int(e.kind),
            channel,
            adapt(e.occurred_at),
            json.dumps(e.payload),
            created,
            e.client_event_id,
        ]
    rows = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(events))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES {rows} ON CONFLICT DO NOTHING "
            "RETURNING lead_id, client_event_id",
            params,
        )
        inserted = {(int(lead_id), cid) for lead_id, cid in cursor.fetchall()}
    return {j for j, e in enumerate(events) if (e.lead_id, e.client_event_id) not in inserted}


def _bump_last_activity(latest: Mapping[int, datetime]) -> None:
    # One UPDATE … FROM (VALUES …): the VALUES columns are column1, column2 in both databases.
    table = Lead._meta.db_table
    row = "(%s::bigint, %s::timestamptz)" if connection.vendor == "postgresql" else "(%s, %s)"
    adapt = connection.ops.adapt_datetimefield_value
    params: list[Any] = []
    for lead_id, at in sorted(latest.items()):
        params += [lead_id, adapt(at)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_activity_at = v.column2 FROM (VALUES {', '.join([row] * len(latest))}) "
            f"AS v WHERE {table}.id = v.column1 AND ({table}.last_activity_at IS NULL "
            f"OR {table}.last_activity_at < v.column2)",  # no new row version when nothing moves
            params,
        )


def add_time_on_page(*, lead_id: int, client_event_id: str, seconds: int) -> bool:
    """Note the time spent on a page view already on the timeline (False: no such page view)."""
    view = Interaction.objects.filter(
        lead_id=lead_id, client_event_id=client_event_id, kind=InteractionKind.PAGE_VIEW
    ).first()
    if view is None:
        return False
    payload = {**(view.payload or {}), "seconds": int(seconds)}
    Interaction.objects.filter(pk=view.pk).update(payload=payload)
    return True


def set_on_duty(*, user: User, on_duty: bool, now: datetime | None = None) -> StaffProfile:
    """Take or stop taking live chats and callbacks; a user coming on duty joins the round robin last."""
    now = now or timezone.now()
    with transaction.atomic():
        profile, _ = StaffProfile.objects.select_for_update().get_or_create(user=user)
        if profile.on_duty != on_duty:
            profile.on_duty = on_duty
            profile.on_duty_changed_at = now
            fields = ["on_duty", "on_duty_changed_at"]
            if on_duty:
                profile.last_routed_at = now  # behind the ones already waiting their turn
                fields.append("last_routed_at")
            profile.save(update_fields=fields)
    return profile


def update_staff_profile(*, user: User, **values: Any) -> StaffProfile:
    """Change a user's own settings (time zone, alert opt-ins); invalid values raise ValidationError."""
    allowed = {"timezone", "alert_sound", "alert_desktop"}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"Not a profile setting: {', '.join(sorted(unknown))}")
    profile, _ = StaffProfile.objects.get_or_create(user=user)
    for key, value in values.items():
        setattr(profile, key, value)
    profile.full_clean(exclude=["user"])
    profile.save(update_fields=list(values))
    return profile


# --- Promises: an owner for every follow-up, and escalation when overdue (docs/dashboard.md) -------

from django.conf import settings as django_settings  # noqa: E402  (this section's own imports)
from django.urls import reverse  # noqa: E402

from leadcrm import alerts, routing  # noqa: E402

ESCALATION_BATCH = 1000  # follow-ups per sweep pass; the rest go on the next pass


def follow_up_owner(*, lead: Lead, created_by: User | None = None, now: datetime | None = None) -> User:
    """Who owns a new promise on `lead` when nobody was named: the lead's owner, else the person
    making it, else the routing rule (`leadcrm.routing.promise_owner`). Never nobody."""
    now = now or timezone.now()
    if lead.owner_id is not None and routing.is_staff_member(lead.owner):
        return lead.owner  # type: ignore[return-value]
    if created_by is not None and created_by.is_active:
        return created_by
    return routing.promise_owner(lead, now=now)


def hand_on_follow_ups(*, user: User, now: datetime | None = None) -> int:
    """Give `user`'s open follow-ups to others by the routing rule (they are leaving); returns how
    many. Runs before a user is deleted (a pre_delete receiver), so no open promise loses its owner."""
    now = now or timezone.now()
    with transaction.atomic():
        mine = list(
            FollowUp.objects.select_for_update(of=("self",))
            .filter(assigned_to=user, done_at__isnull=True)
            .select_related("lead", "lead__owner")
        )
        for follow_up in mine:
            follow_up.assigned_to = routing.promise_owner(follow_up.lead, now=now, exclude={user.pk})
            follow_up.overdue_alerted_at = None
            follow_up.updated_at = now
        FollowUp.objects.bulk_update(
            mine, ["assigned_to", "overdue_alerted_at", "updated_at"], batch_size=500
        )
    return len(mine)


def hand_on_before_delete(sender: Any, instance: User, **kwargs: Any) -> None:
    """pre_delete of a user (connected in leadcrm.apps): their open follow-ups go to others first."""
    hand_on_follow_ups(user=instance)


def needs_attention(*, now: datetime | None = None) -> Any:
    """Open follow-ups a manager must look at: overdue, or whose owner left (inactive)."""
    now = now or timezone.now()
    return (
        FollowUp.objects.filter(done_at__isnull=True)
        .filter(Q(due_at__lt=now) | Q(assigned_to__is_active=False))
        .select_related("lead", "assigned_to")
        .order_by("due_at", "pk")
    )


def escalate_overdue_follow_ups(*, now: datetime | None = None) -> tuple[int, int]:
    """Alert owners of follow-ups that fell due, and the managers FOLLOW_UP_ESCALATE_AFTER_MIN
    later; each once (marked overdue_alerted_at / escalated_at). Set-based; safe to run twice or
    concurrently (rows locked with SKIP LOCKED). Returns (owner alerts, escalations) made."""
    now = now or timezone.now()
    grace = timedelta(minutes=django_settings.FOLLOW_UP_ESCALATE_AFTER_MIN)
    open_ones = FollowUp.objects.filter(done_at__isnull=True, escalated_at__isnull=True)
    with transaction.atomic():
        newly_due = list(
            open_ones.select_for_update(skip_locked=True, of=("self",))
            .filter(overdue_alerted_at__isnull=True, due_at__lte=now)
            .order_by("due_at")
            .values_list("pk", "assigned_to_id")[:ESCALATION_BATCH]
        )
        FollowUp.objects.filter(pk__in=[pk for pk, _ in newly_due]).update(overdue_alerted_at=now)
        by_owner: dict[int, list[int]] = {}
        for pk, owner_id in newly_due:
            by_owner.setdefault(owner_id, []).append(pk)
        mine_url = reverse("leadcrm:follow_ups")
        for owner_id, ids in by_owner.items():
            alerts.publish(
                "followup.overdue",
                {"count": len(ids), "follow_ups": ids[:20], "escalated": False, "url": mine_url},
                users=[owner_id],
            )
        late = list(
            open_ones.select_for_update(skip_locked=True, of=("self",))
            .filter(due_at__lte=now - grace)
            .order_by("due_at")
            .values_list("pk", flat=True)[:ESCALATION_BATCH]
        )
        FollowUp.objects.filter(pk__in=late).update(
            escalated_at=now, overdue_alerted_at=Coalesce("overdue_alerted_at", Value(now))
        )
        if late:
            alerts.publish(
                "followup.overdue",
                {
                    "count": len(late),
                    "follow_ups": late[:20],
                    "escalated": True,
                    "url": reverse("leadcrm:follow_ups_attention"),
                },
                managers=True,
            )
    return len(newly_due), len(late)
