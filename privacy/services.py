"""Personal data: export everything held about a person, erase it, and retire old leads.

Erasure anonymises rather than deletes: the lead row stays (counts by status, source and stage
stay right), its personal fields are blanked by `leadcrm.services.anonymise_leads`, the chat
transcripts go (`chatbot.services.erase_transcripts`), the admin log and the audit trail forget
what they quoted, and the model stops training on the lead. Every export and erasure leaves one
audit row that names the lead by id only.
"""

from __future__ import annotations

import calendar
import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.schedules import crontab
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Coalesce, Concat, Greatest
from django.utils import timezone

from audit import services as audit
from chatbot import services as chat
from leadcrm import services as crm
from leadcrm.models import SCORE_FIELDS, Consent, FollowUp, Interaction, InteractionKind, Lead, LeadStatus
from privacy.models import PrivacyRequest, RequestKind, RequestStatus
from privacy.signals import person_data_requested
from scoring.models import ScoreSnapshot
from scoring.services import rescore_leads

RETENTION_TASK = "privacy-retention"  # its CELERY_BEAT_SCHEDULE entry
RETENTION_CHUNK = 1000  # leads per transaction when retention applies
EXPORT_FORMATS = ("json", "csv")
CSV_COLUMNS = ("record", "record_id", "field", "value")

# The export's own sections; any other is one an app above added (privacy.signals).
CORE_SECTIONS = frozenset(
    {
        "exported_at",
        "lead",
        "scores",
        "interactions",
        "chat_transcripts",
        "consents",
        "follow_ups",
        "segments",
        "privacy_requests",
    }
)
# Lead columns that are the business's bookkeeping, not data about the person.
NOT_EXPORTED = {"rescore_requested_at", "owner", "possible_duplicate_of", *SCORE_FIELDS}


# --- Finding the person --------------------------------------------------------------------------


def find_person(email: str) -> Lead | None:
    """The lead with this email (case-insensitive), or None. Erased leads have no email."""
    email = (email or "").strip()
    if not email:
        return None
    return Lead.objects.filter(email__iexact=email).first()


# --- Export ----------------------------------------------------------------------------------------


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def person_data(lead: Lead, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything held about this person as JSON-able data: the lead, its scores with their
    reasons and history, interactions, chat transcripts, consents, follow-ups, lists and requests,
    and the sections apps above this one add (`privacy.signals.person_data_requested`: the
    website tracking's linked visitor ids and waiting events)."""
    now = now or timezone.now()
    lead_fields = {
        field.name: _iso(getattr(lead, field.attname))
        for field in Lead._meta.concrete_fields
        if field.name not in NOT_EXPORTED
    }
    scores = {
        "rule_score": lead.rule_score,
        "fit_score": lead.fit_score,
        "engagement_score": lead.engagement_score,
        "grade": lead.grade,
        "priority": lead.priority,
        "probability_of_winning": lead.ml_probability,
        "scored_at": _iso(lead.scored_at),
        "reasons": lead.score_breakdown or [],
        "model_factors": lead.ml_factors or [],
        "history": [
            {key: _iso(value) for key, value in row.items()}
            for row in ScoreSnapshot.objects.filter(lead_id=lead.pk)
            .order_by("taken_at", "id")
            .values("taken_at", "rule_score", "fit_score", "engagement_score", "grade", "ml_probability")
        ],
    }
    interactions = [
        {
            "id": row["id"],
            "kind": InteractionKind(row["kind"]).slug,
            "channel": row["channel"],
            "occurred_at": _iso(row["occurred_at"]),
            "payload": row["payload"],
            "sentiment": row["sentiment"],
        }
        for row in Interaction.objects.filter(lead_id=lead.pk)
        .order_by("occurred_at", "id")
        .values("id", "kind", "channel", "occurred_at", "payload", "sentiment")
    ]
    consents = [
        {
            "id": c.pk,
            "purpose": c.purpose,
            "granted": c.granted,
            "text": c.text,
            "text_version": c.text_version,
            "source": c.source,
            "recorded_by": c.recorded_by.get_username() if c.recorded_by else None,
            "recorded_at": _iso(c.recorded_at),
        }
        for c in Consent.objects.filter(lead_id=lead.pk)
        .select_related("recorded_by")
        .order_by("recorded_at", "id")
    ]
    follow_ups = [
        {key: _iso(value) for key, value in row.items()}
        for row in FollowUp.objects.filter(lead_id=lead.pk)
        .order_by("due_at", "id")
        .values("id", "due_at", "done_at", "note", "created_at")
    ]
    requests = [
        {key: _iso(value) for key, value in row.items()}
        for row in PrivacyRequest.objects.filter(lead_id=lead.pk)
        .order_by("created_at", "id")
        .values("id", "kind", "status", "channel", "created_at", "handled_at")
    ]
    data: dict[str, Any] = {
        "exported_at": now.isoformat(),
        "lead": lead_fields,
        "scores": scores,
        "interactions": interactions,
        "chat_transcripts": chat.transcripts_for(lead.pk),
        "consents": consents,
        "follow_ups": follow_ups,
        "segments": sorted(lead.segments.values_list("name", flat=True)),
        "privacy_requests": requests,
    }
    for _, sections in person_data_requested.send(sender=Lead, lead_id=lead.pk):
        if isinstance(sections, dict):  # {section: records}; a receiver with nothing returns {}
            for name, rows in sections.items():
                data.setdefault(name, rows)  # an app's section never replaces the export's own
    return data


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        return json.dumps(value, ensure_ascii=False, cls=DjangoJSONEncoder)
    return str(value)


def _rows(record: str, record_id: Any, item: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    for field, value in item.items():
        yield record, str(record_id), field, _cell(value)


def csv_rows(data: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """The export as one long table: (record, record_id, field, value), one row per value.

    Records: lead, score, score_reason, model_factor, score_history, interaction, chat_conversation,
    chat_message (id "conversation.message"), consent, follow_up, segment, privacy_request, and
    each section another app added (record = the section name, e.g. website_visitors).
    """
    yield "export", "", "exported_at", data["exported_at"]
    lead_id = data["lead"]["id"]
    yield from _rows("lead", lead_id, data["lead"])
    scores = dict(data["scores"])
    reasons, factors, history = scores.pop("reasons"), scores.pop("model_factors"), scores.pop("history")
    yield from _rows("score", lead_id, scores)
    for i, reason in enumerate(reasons, 1):
        yield from _rows("score_reason", i, reason if isinstance(reason, dict) else {"reason": reason})
    for i, factor in enumerate(factors, 1):
        yield from _rows("model_factor", i, factor if isinstance(factor, dict) else {"factor": factor})
    for i, snapshot in enumerate(history, 1):
        yield from _rows("score_history", i, snapshot)
    for interaction in data["interactions"]:
        yield from _rows("interaction", interaction["id"], interaction)
    for c, conversation in enumerate(data["chat_transcripts"], 1):
        conversation = dict(conversation)
        messages = conversation.pop("messages", [])
        yield from _rows("chat_conversation", c, conversation)
        for m, message in enumerate(messages, 1):
            yield from _rows("chat_message", f"{c}.{m}", message)
    for consent in data["consents"]:
        yield from _rows("consent", consent["id"], consent)
    for follow_up in data["follow_ups"]:
        yield from _rows("follow_up", follow_up["id"], follow_up)
    for i, name in enumerate(data["segments"], 1):
        yield "segment", str(i), "name", name
    for request in data["privacy_requests"]:
        yield from _rows("privacy_request", request["id"], request)
    for name, records in data.items():
        if name in CORE_SECTIONS:
            continue
        for i, record in enumerate(records, 1):
            yield from _rows(name, record.get("id", i), record)


def render_export(data: dict[str, Any], fmt: str) -> tuple[str, str]:
    """(body, content type) of an export in `fmt` (json or csv)."""
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2, cls=DjangoJSONEncoder), "application/json"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(data))
        return out.getvalue(), "text/csv; charset=utf-8"
    raise ValidationError({"format": f"Unknown format {fmt!r}. Use json or csv."})


def export_person(
    *, lead: Lead, fmt: str, by: User | None, channel: str = "manager", now: datetime | None = None
) -> tuple[str, str]:
    """Export a person's data as (body, content type) and record it in the audit trail."""
    if fmt not in EXPORT_FORMATS:
        raise ValidationError({"format": f"Unknown format {fmt!r}. Use json or csv."})
    if lead.erased_at is not None:
        raise ValidationError("This person's data was erased; there is nothing personal left to export.")
    body, content_type = render_export(person_data(lead, now=now), fmt)
    audit.record(
        actor=by,
        action="exported",
        target_type=Lead,
        target_id=lead.pk,
        summary=f"Personal data of lead #{lead.pk} exported as {fmt.upper()} ({channel}).",
    )
    return body, content_type


def export_filename(lead: Lead, fmt: str) -> str:
    return f"lead-{lead.pk}-data.{fmt}"


# --- Erasure ----------------------------------------------------------------------------------------


def _scrub_admin_log(lead_ids: Sequence[int]) -> int:
    """The admin's history of these leads and their follow-ups keeps its rows without their names."""
    lead_type = ContentType.objects.get_for_model(Lead)
    follow_up_type = ContentType.objects.get_for_model(FollowUp)
    follow_up_ids = [
        str(i) for i in FollowUp.objects.filter(lead_id__in=lead_ids).values_list("pk", flat=True)
    ]
    scrubbed = LogEntry.objects.filter(
        content_type=lead_type, object_id__in=[str(i) for i in lead_ids]
    ).update(object_repr=Concat(Value("Erased lead #"), F("object_id")), change_message="")
    if follow_up_ids:
        scrubbed += LogEntry.objects.filter(content_type=follow_up_type, object_id__in=follow_up_ids).update(
            object_repr=Concat(Value("Follow-up #"), F("object_id")), change_message=""
        )
    return scrubbed


def _erase(lead_ids: Sequence[int], *, by: User | None, now: datetime, summary: str = "") -> int:
    """Erase these leads in one transaction, set-based.

    With `summary`, each lead gets that "erased" audit row; without, the audit app adds its own.
    """
    with transaction.atomic():
        erased = crm.anonymise_leads(lead_ids=lead_ids, now=now)
        chat.erase_transcripts(lead_ids=lead_ids)
        _scrub_admin_log(lead_ids)
        PrivacyRequest.objects.filter(lead_id__in=lead_ids, status=RequestStatus.OPEN).update(
            status=RequestStatus.DONE, handled_by=by, handled_at=now
        )
        # Scores follow the anonymised data (e.g. a company email no longer counts).
        rescore_leads(lead_ids, now=now)
        if summary:
            for lead_id in lead_ids:
                audit.record(by, "erased", Lead, lead_id, summary=summary)
        # Last: the triggers' rows of this very erasure are scrubbed too (set-based for retention).
        audit.scrub_people(lead_ids)
    return erased


def erase_person(*, lead: Lead, by: User | None, now: datetime | None = None) -> None:
    """Erase one person's data everywhere it is held, and leave one audit row naming the lead by id."""
    now = now or timezone.now()
    if lead.erased_at is not None:
        raise ValidationError("This person's data was already erased.")
    _erase(
        [lead.pk],
        by=by,
        now=now,
        summary=f"Personal data of lead #{lead.pk} erased on request; the anonymised row is kept for counts.",
    )
    lead.refresh_from_db()


# --- Requests from the website chat ----------------------------------------------------------------


def is_identified(lead: Lead | None, *, identity_verified: bool) -> bool:
    """Whether the widget may show this visitor their data: a known email or a verified identity."""
    return lead is not None and lead.erased_at is None and (bool(lead.email) or identity_verified)


def request_erasure(*, lead: Lead, now: datetime | None = None) -> tuple[PrivacyRequest, bool]:
    """Record a person's request to be erased, for a manager to act on; (request, created).
    Asking again while one is open returns the open one."""
    now = now or timezone.now()
    with transaction.atomic():
        existing = PrivacyRequest.objects.filter(
            lead=lead, kind=RequestKind.ERASURE, status=RequestStatus.OPEN
        ).first()
        if existing is not None:
            return existing, False
        request = PrivacyRequest.objects.create(
            lead=lead, kind=RequestKind.ERASURE, channel="widget", created_at=now
        )
    audit.record(
        actor=None,
        action="created",
        target_type=PrivacyRequest,
        target_id=request.pk,
        summary=f"Erasure requested from the website chat for lead #{lead.pk}.",
        lead_id=lead.pk,
    )
    return request, True


def decline_request(
    *, request: PrivacyRequest, by: User, note: str, now: datetime | None = None
) -> PrivacyRequest:
    """Close an open request without acting on it, saying why (e.g. the law requires keeping invoices)."""
    note = " ".join((note or "").split())
    if not note:
        raise ValidationError({"note": "Say why the request is declined; the person may ask."})
    if request.status != RequestStatus.OPEN:
        raise ValidationError("This request was already handled.")
    request.status = RequestStatus.DECLINED
    request.handled_by = by
    request.handled_at = now or timezone.now()
    request.note = note[:300]
    request.save(update_fields=["status", "handled_by", "handled_at", "note"])
    audit.record(
        actor=by,
        action="changed",
        target_type=PrivacyRequest,
        target_id=request.pk,
        summary=f"Erasure request for lead #{request.lead_id} declined.",
        lead_id=request.lead_id,
    )
    return request


def open_requests() -> QuerySet[PrivacyRequest]:
    return PrivacyRequest.objects.filter(status=RequestStatus.OPEN).select_related("lead")


# --- Retention ----------------------------------------------------------------------------------------


def retention_months() -> int:
    return max(int(settings.PRIVACY_RETENTION_MONTHS), 0)


def retention_cutoff(now: datetime, months: int | None = None) -> datetime | None:
    """Leads inactive since before this time are retired; None when retention is off (0 months)."""
    months = retention_months() if months is None else months
    return months_before(now, months) if months > 0 else None


def months_before(now: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier (the month's last day if shorter)."""
    years, month0 = divmod(now.month - 1 - months, 12)
    year, month = now.year + years, month0 + 1
    return now.replace(year=year, month=month, day=min(now.day, calendar.monthrange(year, month)[1]))


def retention_candidates(*, now: datetime, months: int | None = None) -> QuerySet[Lead]:
    """Unconverted (not won), not yet erased leads with no activity and no status change since the cutoff."""
    cutoff = retention_cutoff(now, months)
    if cutoff is None:
        return Lead.objects.none()
    return (
        Lead.objects.filter(erased_at__isnull=True)
        .exclude(status=LeadStatus.WON)
        .annotate(
            last_touch=Greatest(
                Coalesce("last_activity_at", "created_at"), Coalesce("status_changed_at", "created_at")
            )
        )
        .filter(last_touch__lt=cutoff)
        .order_by("last_touch", "id")
    )


def next_retention_run(now: datetime) -> datetime | None:
    """When the beat schedule runs retention next (None when it is not scheduled)."""
    entry = settings.CELERY_BEAT_SCHEDULE.get(RETENTION_TASK)
    schedule = entry and entry.get("schedule")
    if not isinstance(schedule, crontab):
        return None
    at = now + schedule.remaining_estimate(now)
    return (at + timedelta(seconds=30)).replace(second=0, microsecond=0)  # the estimate runs a hair early


@dataclass(frozen=True)
class Candidate:
    lead: Lead
    last_touch: datetime  # the newer of its last activity and its last status change


def _last_touch(lead: Lead) -> datetime:
    """The same as retention_candidates' last_touch, for a loaded lead."""
    return max(lead.last_activity_at or lead.created_at, lead.status_changed_at or lead.created_at)


@dataclass(frozen=True)
class RetentionPreview:
    months: int
    cutoff: datetime | None
    count: int
    sample: list[Candidate]
    next_run: datetime | None


def retention_preview(*, now: datetime | None = None, sample: int = 20) -> RetentionPreview:
    """What the next retention run would anonymise: how many leads, and the first few."""
    now = now or timezone.now()
    leads = retention_candidates(now=now)
    return RetentionPreview(
        months=retention_months(),
        cutoff=retention_cutoff(now),
        count=leads.count(),
        sample=[Candidate(lead, _last_touch(lead)) for lead in leads.select_related("owner")[:sample]],
        next_run=next_retention_run(now),
    )


def apply_retention(
    *, now: datetime | None = None, by: User | None = None, chunk: int = RETENTION_CHUNK
) -> int:
    """Anonymise every lead past the retention period, a chunk per transaction; returns how many."""
    now = now or timezone.now()
    cutoff = retention_cutoff(now)
    if cutoff is None:
        return 0
    total = 0
    while ids := list(retention_candidates(now=now).values_list("pk", flat=True)[:chunk]):
        total += _erase(ids, by=by, now=now)
    if total:
        audit.record(
            actor=by,
            action="erased",
            target_type=Lead,
            target_id=None,
            summary=(
                f"Retention: {total} unconverted leads inactive since before {cutoff:%Y-%m-%d} anonymised "
                f"(PRIVACY_RETENTION_MONTHS={retention_months()})."
            ),
        )
    return total
