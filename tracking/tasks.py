"""Tracking's periodic work (Celery beat: tracking-sweep)."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True)
def sweep() -> tuple[int, int]:
    """Move events that raced a visitor's link; delete old anonymous events."""
    from tracking.services import sweep as run

    return run()
