"""Full-recompute runs: queue one (coalesced with any run still waiting), and claim one to run.

Kept apart from `scoring.services` so that the predictive model (which `services` calls for every
batch) can ask for a full recompute after a promotion without importing `services` back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import User
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


def claim_run(run_id: int, *, now: datetime | None = None) -> bool:
    """Mark a queued run as started; False when another worker has it (or it is finished)."""
    now = now or timezone.now()
    stale = now - timedelta(hours=1)  # a worker that died mid-run; acks_late redelivers its task
    claimed = RecomputeRun.objects.filter(pk=run_id, status=RecomputeRun.Status.QUEUED).update(
        status=RecomputeRun.Status.RUNNING, started_at=now
    )
    if not claimed:
        claimed = RecomputeRun.objects.filter(
            pk=run_id,
            status__in=[RecomputeRun.Status.RUNNING, RecomputeRun.Status.APPLYING],
            started_at__lt=stale,
        ).update(started_at=now)
    return bool(claimed)
