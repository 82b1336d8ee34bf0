"""Import jobs (upload → mapping → dry run → run, in Celery) and CSV exports, on top of leadcrm.services.

Every row is written by `leadcrm.services.import_leads` (create_lead's checks, consent rows, outcome
stamps, set-based writes); the leads it touched are rescored in the same transaction with
`scoring.services.rescore_leads` (a big file queues one full recompute instead), and one audit row sums the job up (the database triggers write
one summary row per statement touching more than 50 leads, which says neither who nor which file).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from audit import services as audit
from config.on_commit import enqueue_on_commit
from dataio import columns
from dataio.models import ImportJob, ImportRowResult, OnDuplicate
from dataio.parsing import FileProblem, Table, read_table
from leadcrm.models import Lead
from leadcrm.services import ImportResult, import_leads
from scoring.services import rescore_leads, schedule_recompute

logger = logging.getLogger(__name__)

RUN_TASK = "dataio.tasks.run_import_job"
RESCORE_INLINE_MAX = 10_000  # up to this many leads are rescored in the import's transaction
SAMPLE_ROWS = 3


# --- The import path shared by the pages, the CLI and the benchmark -------------------------------


@dataclass
class Outcome:
    """An import's result with the file's notes (encoding, BOM…)."""

    result: ImportResult
    notes: list[str]
    rows: int


def import_table(
    table: Table,
    mapping: Sequence[str],
    *,
    on_duplicate: str = OnDuplicate.SKIP,
    dry_run: bool = False,
    user: Any = None,
    label: str = "",
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Convert every row with `mapping`, import the good ones in one transaction (nothing is
    half-imported: a crash rolls the whole file back), rescore what changed, and sum it up in the
    audit trail. Refused rows are in the result with their line and reason."""
    rows = [columns.to_import_row(line, cells, table.headers, mapping) for line, cells in table.rows]
    actor = user if getattr(user, "is_authenticated", False) else None
    if dry_run:
        return import_leads(rows=rows, on_duplicate=on_duplicate, dry_run=True, progress=progress)
    with audit.acting_as(actor, command="import_leads"), transaction.atomic():
        result = import_leads(rows=rows, on_duplicate=on_duplicate, recorded_by=actor, progress=progress)
        ids = result.lead_ids
        if len(ids) <= RESCORE_INLINE_MAX:
            # Scored in the same transaction: the leads reach the queue with their scores.
            rescore_leads(ids)
        elif ids:
            # A big file: one full recompute after commit (queued as a run, which the sweep restarts
            # if the broker loses it; progress on the rules page), as after load_history.
            schedule_recompute(reason=f"Import {label or 'of a file'}: {len(ids)} leads", by=actor)
        created, updated = result.count("create"), result.count("update")
        if created or updated:
            audit.record(
                actor,
                "created" if created else "changed",
                Lead,
                summary=(
                    f"Import {label or 'of a file'}: {created} leads created, {updated} updated, "
                    f"{result.count('skip')} skipped, {len(result.refused)} refused; "
                    f"{result.consents} consent records, {result.outcomes} outcomes"
                ),
            )
    logger.info(  # counts only: file names and cells may hold personal data
        "Import: %d created, %d updated, %d skipped, %d refused",
        result.count("create"),
        result.count("update"),
        result.count("skip"),
        len(result.refused),
    )
    return result


# --- Jobs: the pages' path --------------------------------------------------------------------------


def start_job(*, data: bytes, name: str, user: Any) -> ImportJob:
    """Read the upload (FileProblem if the file cannot be imported), keep it, and suggest a mapping."""
    table = read_table(data, name)
    job = ImportJob(
        original_name=name[:255],
        created_by=user if getattr(user, "is_authenticated", False) else None,
        headers=table.headers,
        samples=[
            [cells[i] if i < len(cells) else "" for _, cells in table.rows[:SAMPLE_ROWS]]
            for i in range(len(table.headers))
        ],
        notes=table.notes,
        total_rows=len(table.rows),
        mapping=columns.suggest(table.headers),
    )
    job.file.save(f"import-{timezone.now():%Y%m%d-%H%M%S}.dat", ContentFile(data), save=False)
    job.save()
    return job


def save_mapping(
    *, job: ImportJob, mapping: Sequence[str], on_duplicate: str, with_outcomes: bool
) -> ImportJob:
    """Store the chosen mapping and options; ValidationError lists what is wrong with them."""
    if job.is_busy:
        raise ValidationError("This import is running; wait for it to finish.")
    if len(mapping) != len(job.headers):
        raise ValidationError("Choose a target for every column.")
    problems = columns.check_mapping(mapping, outcomes=with_outcomes)
    if on_duplicate not in OnDuplicate.values:
        problems.append("Choose what to do with emails already in LeadCRM: update or skip.")
    if problems:
        raise ValidationError(problems)
    job.mapping, job.on_duplicate, job.with_outcomes = list(mapping), on_duplicate, with_outcomes
    job.status = ImportJob.Status.MAPPING
    job.save(update_fields=["mapping", "on_duplicate", "with_outcomes", "status"])
    return job


def queue_job(*, job: ImportJob, dry_run: bool) -> ImportJob:
    """Queue a dry run or the import itself after commit; the sweep re-sends one the broker lost."""
    if job.is_busy:
        raise ValidationError("This import is already running.")
    if job.status == ImportJob.Status.DONE:
        raise ValidationError("This file was imported already. Upload it again to import it once more.")
    if not dry_run and job.status != ImportJob.Status.CHECKED:
        raise ValidationError("Run the dry run first, so you see what will happen to each row.")
    job.status = ImportJob.Status.CHECKING if dry_run else ImportJob.Status.QUEUED
    job.dry_run = dry_run
    job.done_rows = 0
    job.error = ""
    job.queued_at = timezone.now()
    job.save(update_fields=["status", "dry_run", "done_rows", "error", "queued_at"])
    enqueue_on_commit(RUN_TASK, job.pk)
    return job


def progress_key(job_id: int) -> str:
    return f"dataio:job:{job_id}:done"


def live_progress(job: ImportJob) -> int:
    """Rows done so far: the real run writes in one transaction, so its progress is in the cache."""
    if job.status != ImportJob.Status.RUNNING:
        return job.done_rows
    return int(cache.get(progress_key(job.pk)) or 0)


def run_job(job_id: int) -> None:
    """Run a queued dry run or import (the task's body). Safe to call twice: only one claims it."""
    now = timezone.now()
    claimed = ImportJob.objects.filter(
        pk=job_id, status__in=(ImportJob.Status.CHECKING, ImportJob.Status.QUEUED)
    ).update(status=ImportJob.Status.RUNNING, started_at=now, finished_at=None)
    if not claimed:
        return
    job = ImportJob.objects.select_related("created_by").get(pk=job_id)
    cache.set(progress_key(job.pk), 0, 3600)

    def progress(done: int) -> None:
        cache.set(progress_key(job.pk), done, 3600)

    try:
        with job.file.open("rb") as handle:
            table = read_table(handle.read(), job.original_name)
        result = import_table(
            table,
            job.mapping,
            on_duplicate=job.on_duplicate,
            dry_run=job.dry_run,
            user=job.created_by,
            label=f"#{job.pk} ({job.original_name})",
            progress=progress,
        )
    except FileProblem as exc:
        _finish(job, error=str(exc))
        return
    except Exception as exc:
        logger.exception("Import job %s failed", job.pk)
        _finish(job, error=f"The import stopped ({type(exc).__name__}); nothing was imported. Try again.")
        return
    _store_result(job, result)


def _finish(job: ImportJob, *, error: str) -> None:
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.FAILED, error=error[:2000], finished_at=timezone.now()
    )


@transaction.atomic
def _store_result(job: ImportJob, result: ImportResult) -> None:
    ImportRowResult.objects.filter(job=job).delete()
    # A dry run shows every row; the import keeps the rows that need a look (refused and skipped).
    kept = result.rows if job.dry_run else [r for r in result.rows if r.action in ("refuse", "skip")]
    ImportRowResult.objects.bulk_create(
        (ImportRowResult(job=job, line=r.line, action=r.action, reason=r.reason[:2000]) for r in kept),
        batch_size=5000,
    )
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.CHECKED if job.dry_run else ImportJob.Status.DONE,
        done_rows=len(result.rows),
        created=result.count("create"),
        updated=result.count("update"),
        skipped=result.count("skip"),
        refused=len(result.refused),
        finished_at=timezone.now(),
    )


STALE_QUEUED_S = 60
STALE_RUNNING_S = 3600


def sweep_jobs(*, now: Any = None) -> int:
    """Re-send jobs the broker lost; fail jobs whose worker died mid-run (their transaction rolled
    back, so nothing of the file is in the database). Returns how many were touched."""
    from config.on_commit import enqueue_now

    now = now or timezone.now()
    lost = ImportJob.objects.filter(
        status__in=(ImportJob.Status.CHECKING, ImportJob.Status.QUEUED),
        queued_at__lt=now - timedelta(seconds=STALE_QUEUED_S),
    ).values_list("pk", flat=True)
    touched = 0
    for job_id in lost:
        touched += enqueue_now(RUN_TASK, job_id)
    touched += ImportJob.objects.filter(
        status=ImportJob.Status.RUNNING, started_at__lt=now - timedelta(seconds=STALE_RUNNING_S)
    ).update(
        status=ImportJob.Status.FAILED,
        error="The worker stopped during the import; nothing was imported. Run it again.",
        finished_at=now,
    )
    return touched


def error_report(job: ImportJob) -> Iterator[str]:
    """The rows a job refused or skipped, as CSV lines: line, action, reason."""
    yield from csv_lines([("line", "action", "reason")])
    rows = ImportRowResult.objects.filter(job=job).exclude(action__in=("create", "update")).order_by("line")
    yield from csv_lines((r.line, r.action, r.reason) for r in rows.iterator(chunk_size=2000))


# --- Export -------------------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "company_name",
    "industry",
    "employee_count",
    "annual_revenue_band",
    "job_title",
    "country",
    "city",
    "timezone",
    "preferred_language",
    "source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "status",
    "lost_reason",
    "closed_at",
    "owner__username",
    "marketing_consent",
    "contact_consent",
    "grade",
    "rule_score",
    "ml_probability",
    "priority",
    "created_at",
    "last_activity_at",
    "custom",
)
EXPORT_HEADERS = tuple("owner" if c == "owner__username" else c for c in EXPORT_COLUMNS)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value  # a spreadsheet must not run a lead's "=HYPERLINK(…)" as a formula
    return value


def csv_lines(rows: Any) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow([_cell(v) for v in row])


def export_lines(leads: QuerySet[Lead]) -> Iterator[str]:
    """The leads as CSV text, a line at a time (a server-side cursor on PostgreSQL): the response
    streams, however many leads there are."""
    yield "\ufeff"  # Excel reads UTF-8 only with a BOM
    yield from csv_lines([EXPORT_HEADERS])
    yield from csv_lines(leads.values_list(*EXPORT_COLUMNS).iterator(chunk_size=2000))


def record_export(*, user: Any, count: int, what: str, request: HttpRequest | None = None) -> None:
    audit.record(
        user, "exported", Lead, summary=f"CSV export of {count} leads: {what}"[:300], request=request
    )
