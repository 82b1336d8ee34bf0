"""Periodic privacy work: retire leads past the retention period (CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

from privacy import services

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def apply_retention() -> int:
    """Anonymise unconverted leads inactive past PRIVACY_RETENTION_MONTHS. Safe to run twice:
    erased leads are no longer candidates, and each chunk commits on its own."""
    erased = services.apply_retention()
    logger.info("Retention anonymised %d leads", erased)  # a count, never who
    return erased
