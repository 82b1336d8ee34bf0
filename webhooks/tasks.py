"""Webhook tasks: deliver one, fan out the due ones, the sweep, the overdue follow-up scan."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task

from webhooks import services


@shared_task(acks_late=True)
def deliver(delivery_id: int, lease: str | None = None) -> None:
    """One attempt of one delivery: the one the fan-out leased to this task (`lease`, ISO time),
    or, without a lease, if it is due. Safe to run twice: the attempt claims its row."""
    services.attempt(delivery_id, lease=datetime.fromisoformat(lease) if lease else None)


@shared_task(acks_late=True)
def deliver_due() -> None:
    """Fan every due delivery out, one task each, so a slow receiver holds up only its own (after
    FANOUT_MAX rows this task queues itself again)."""
    services.sweep()


@shared_task(acks_late=True)
def sweep_deliveries() -> None:
    """Beat: re-queue due deliveries whose nudge the broker lost, and retries that are due."""
    services.sweep()


@shared_task(acks_late=True)
def emit_overdue_follow_ups() -> None:
    """Beat: emit follow_up.overdue once for each follow-up that became overdue since the last scan."""
    services.emit_overdue_follow_ups()
