"""Celery entry points for scoring: ids in, services called."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from leadcrm.models import Lead
from scoring import services, store
from scoring.models import RecomputeRun


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def rescore_lead(lead_id: int) -> None:
    """Rescore one lead. Safe to run twice, late, or after a crash."""
    requested_at = Lead.objects.filter(pk=lead_id).values_list("rescore_requested_at", flat=True).first()
    if requested_at is None:
        return  # deleted, or already scored by another worker or the sweep
    services.rescore_leads([lead_id])
    # Clear the request only if nothing changed while we computed; otherwise go again.
    if not store.clear_rescore_request(lead_id, requested_at=requested_at):
        rescore_lead.delay(lead_id)


REQUEUE_AFTER_S = 1.0  # a lead that keeps getting events is rescored about once a second, not nonstop


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def rescore_leads_task(lead_ids: list[int]) -> None:
    """Rescore many leads in one set-based pass (a batch of events touched them). Safe to run
    twice, late, or after a crash; leads whose request moved while we computed go again."""
    again = services.rescore_requested(lead_ids)
    if again:
        rescore_leads_task.apply_async((again,), countdown=REQUEUE_AFTER_S)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def recompute_all_task(run_id: int) -> None:
    """Run a queued full recompute; a second delivery of the same run does nothing."""
    if not services.claim_run(run_id):
        return
    services.recompute_all(run=RecomputeRun.objects.get(pk=run_id))


@shared_task(acks_late=True)
def sweep_stale_scores() -> int:
    """Beat, every few seconds: rescore leads whose rescore task was lost (broker away)."""
    return services.sweep_stale_scores()


@shared_task(acks_late=True)
def refresh_decay() -> None:
    """Beat, nightly: recompute every lead so time decay and day windows stay current."""
    services.refresh_decay()
