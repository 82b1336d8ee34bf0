"""Import jobs run by a worker; a sweep re-sends the ones the broker lost."""

from __future__ import annotations

from celery import shared_task

from dataio import services


@shared_task(acks_late=True)
def run_import_job(job_id: int) -> None:
    """Run one queued dry run or import; a second delivery finds it claimed and does nothing."""
    services.run_job(job_id)


@shared_task
def sweep_import_jobs() -> int:
    """Re-send queued jobs the broker lost; mark jobs whose worker died as failed."""
    return services.sweep_jobs()
