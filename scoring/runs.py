"""Full-recompute runs: queue one (coalesced with any run still waiting), and claim one to run.

Kept apart from `scoring.services` so that the predictive model (which `services` calls for every
batch) can ask for a full recompute after a promotion without importing `services` back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import F, Q
from django.utils import timezone

from config.on_commit import enqueue_on_commit
from scoring.models import RecomputeRun

RECOMPUTE_TASK = "scoring.tasks.recompute_all_task"


def schedule_recompute(*, reason: str, by: User | None = None) -> RecomputeRun:
    """Queue one full recompute after commit; a run still waiting to start covers this request too."""
    waiting = RecomputeRun.objects.filter(status=RecomputeRun.Status.QUEUED).order_by("created_at").first()
    if waiting is not None:
        return waiting
    run = RecomputeRun.objects.create(reason=reason[:200], requested_by=by)
    enqueue_on_commit(RECOMPUTE_TASK, run.pk)  # broker down: the sweep restarts queued runs
    return run


def lease() -> timedelta:
    return timedelta(seconds=settings.SCORING_RUN_LEASE_SECONDS)


def claim_run(run_id: int, *, now: datetime | None = None) -> bool:
    """Take a queued run, or one whose worker's lease ran out; False when another worker holds it,
    it is finished, or it has now failed too often (then it is marked failed with the reason)."""
    now = now or timezone.now()
    runs = RecomputeRun.objects.filter(pk=run_id)
    took = {
        "status": RecomputeRun.Status.RUNNING,
        "started_at": now,
        "lease_expires_at": now + lease(),
        "attempts": F("attempts") + 1,
        "done_leads": 0,
    }
    claimed = runs.filter(status=RecomputeRun.Status.QUEUED).update(**took) or runs.filter(
        lease_lost(now), status__in=ACTIVE
    ).update(**took)
    if not claimed:
        return False
    attempts = runs.values_list("attempts", flat=True).get()
    if attempts > MAX_ATTEMPTS:
        fail_run(
            run_id,
            f"Stopped after {MAX_ATTEMPTS} attempts: the worker running it stopped each time "
            "(killed, out of memory or restarted). Scores were left as they were.",
            now=now,
        )
        return False
    return True


ACTIVE = (RecomputeRun.Status.RUNNING, RecomputeRun.Status.APPLYING)
MAX_ATTEMPTS = 3


def lease_lost(now: datetime) -> Q:
    """Running runs whose worker stopped renewing (rows from before leases: by their start)."""
    return Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True, started_at__lt=now - lease())


def renew_lease(run_id: int, **progress: int) -> None:
    """Called by the worker after each chunk: still alive, and how far it got."""
    RecomputeRun.objects.filter(pk=run_id).update(lease_expires_at=timezone.now() + lease(), **progress)


def fail_run(run_id: int, reason: str, *, now: datetime | None = None) -> None:
    RecomputeRun.objects.filter(pk=run_id).update(
        status=RecomputeRun.Status.FAILED,
        finished_at=now or timezone.now(),
        lease_expires_at=None,
        errors=[{"rule_id": None, "error": reason}],
    )


def abandoned_runs(*, now: datetime) -> list[int]:
    """Runs to (re)start: queued ones the broker lost, running ones whose worker's lease ran out."""
    lost_queue = Q(status=RecomputeRun.Status.QUEUED, created_at__lt=now - timedelta(seconds=30))
    lost_worker = Q(status__in=ACTIVE) & lease_lost(now)
    return list(RecomputeRun.objects.filter(lost_queue | lost_worker).values_list("pk", flat=True))


def active_run_ids() -> list[int]:
    return list(RecomputeRun.objects.filter(status__in=ACTIVE).values_list("pk", flat=True))
