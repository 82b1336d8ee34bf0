"""Celery entry points for scoring: ids in, services called."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from leadcrm.models import Lead


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def rescore_lead(lead_id: int) -> None:
    """Rescore one lead. Safe to run twice, late, or after a crash."""
    from scoring.services import rescore_leads  # services imports this module

    requested_at = Lead.objects.filter(pk=lead_id).values_list("rescore_requested_at", flat=True).first()
    if requested_at is None:
        return  # deleted, or already scored by another worker or the sweep
    rescore_leads([lead_id])
    # Clear the request only if nothing changed while we computed; otherwise go again.
    if not Lead.objects.filter(pk=lead_id, rescore_requested_at=requested_at).update(
        rescore_requested_at=None
    ):
        rescore_lead.delay(lead_id)
