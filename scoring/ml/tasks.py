"""Celery entry points for predictive scoring: ids in, services called."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from scoring.ml import services


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def retrain_model(run_id: int) -> None:
    """Carry out one queued training run; a run already claimed or finished is left alone."""
    services.run_training(run_id)


@shared_task
def weekly_retrain() -> None:
    """Queue the scheduled retrain (Celery beat), unless one is already queued or running."""
    services.request_retrain()


@shared_task
def sweep_training_runs() -> None:
    """Re-send training runs the broker lost and fail runs whose worker died (Celery beat, every minute)."""
    services.sweep_training_runs()
