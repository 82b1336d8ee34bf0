"""Celery entry points of the CRM core: the batch events' outbox (`RecordedActivity`) and the
overdue follow-ups' escalation."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from config.on_commit import nudge_received
from leadcrm import services


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def apply_recorded_activity() -> int:
    """Nudged after a batch of events commits, and by beat every few seconds (a lost nudge)."""
    nudge_received(services.APPLY_ACTIVITY_NUDGE)  # before reading: a later commit nudges again
    leads, more = services.apply_recorded_activity()
    if more:  # a long burst: hand the rest to a fresh task instead of holding this worker
        apply_recorded_activity.delay()
    return leads


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def escalate_overdue_follow_ups() -> tuple[int, int]:
    """Beat, every minute: tell owners of follow-ups that fell due, then the managers after the
    grace period (FOLLOW_UP_ESCALATE_AFTER_MIN); each once. Returns (owner alerts, escalations)."""
    return services.escalate_overdue_follow_ups()
