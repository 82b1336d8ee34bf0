"""Scoring writes: queue rescoring after commit and recompute scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from leadcrm.models import Lead


def _enqueue(task: Any, *args: Any) -> Callable[[], None]:
    """A named callable for on_commit: Django logs a failed robust callback by its __qualname__,
    which functools.partial lacks, so a partial would turn "broker down" into an AttributeError."""

    def enqueue() -> None:
        task.delay(*args)

    enqueue.__qualname__ = f"enqueue {task.name}{args}"
    return enqueue


def request_rescore(lead_id: int) -> None:
    """Note that a lead's data changed, and queue one rescore after commit."""
    from scoring.tasks import rescore_lead  # tasks imports this module

    now = timezone.now()
    leads = Lead.objects.filter(pk=lead_id)
    if leads.filter(rescore_requested_at__isnull=True).update(rescore_requested_at=now):
        # First change since the last score: one task. If Redis is down the commit still
        # stands (robust=True) and the sweep catches up from the database.
        transaction.on_commit(_enqueue(rescore_lead, lead_id), robust=True)
    else:
        leads.update(rescore_requested_at=now)  # a task is queued; tell it to look again


def rescore_leads(lead_ids: Sequence[int]) -> None:
    """Recompute and store the scores of these leads (rule engine lands with the scoring work)."""
    Lead.objects.filter(pk__in=list(lead_ids)).update(scored_at=timezone.now())
