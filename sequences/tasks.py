"""Sequence tasks: the beat tick that runs due steps, and the nudge after a lead is enrolled."""

from __future__ import annotations

from celery import shared_task

from sequences import services


@shared_task(acks_late=True)
def run_due_steps() -> int:
    """Beat, every minute: exits, new segment members, due steps. Safe to run twice or late."""
    return services.tick()


@shared_task(acks_late=True)
def run_enrolments(enrolment_ids: list[int]) -> int:
    """Run the first steps of leads just enrolled (the beat catches up if this task is lost)."""
    return services.run_due(ids=enrolment_ids)
