"""Outreach tasks: send one queued email; the sweep that re-sends the ones whose task was lost."""

from __future__ import annotations

from celery import shared_task

from outreach import services


@shared_task(acks_late=True)
def send_email(email_id: int) -> None:
    """Send one queued email if it is due. Safe to run twice: the attempt claims its row."""
    services.deliver(email_id)


@shared_task(acks_late=True)
def sweep_emails() -> None:
    """Beat: re-queue queued emails that are due (lost task, or a retry after an SMTP failure)."""
    services.sweep()
