"""Reads for the sequence pages and the lead panel's sequence card."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count

from leadcrm.models import Lead
from leadcrm.permissions import can_change_lead
from sequences.models import Enrolment, EnrolmentState, ExitReason, Sequence, Step


@dataclass
class SequenceStats:
    active: int = 0
    finished: int = 0
    stopped: Counter[str] = field(default_factory=Counter)  # exit reason label -> count

    @property
    def stopped_reasons(self) -> list[tuple[str, int]]:
        """(reason, count), most frequent first (templates cannot call a Counter's .items)."""
        return self.stopped.most_common()

    @property
    def stopped_total(self) -> int:
        return sum(self.stopped.values())


def sequence_stats(sequence_ids: list[int] | None = None) -> dict[int, SequenceStats]:
    """Enrolments per sequence by state and exit reason: one GROUP BY."""
    rows = Enrolment.objects.all()
    if sequence_ids is not None:
        rows = rows.filter(sequence_id__in=sequence_ids)
    labels = dict(ExitReason.choices)
    stats: dict[int, SequenceStats] = {}
    for row in rows.values("sequence_id", "state", "exit_reason").annotate(n=Count("id")).order_by():
        entry = stats.setdefault(row["sequence_id"], SequenceStats())
        if row["state"] == EnrolmentState.ACTIVE:
            entry.active += row["n"]
        elif row["state"] == EnrolmentState.FINISHED:
            entry.finished += row["n"]
        else:
            entry.stopped[labels.get(row["exit_reason"], row["exit_reason"])] += row["n"]
    return stats


def sequences_with_steps() -> list[Sequence]:
    return list(Sequence.objects.prefetch_related("steps").order_by("name"))


def next_step(enrolment: Enrolment, steps: list[Step]) -> Step | None:
    return next((s for s in steps if s.position >= enrolment.next_position), None)


@dataclass
class LeadCard:
    lead: Lead
    can_change: bool
    active: Enrolment | None
    next_step: Step | None
    next_run_at: datetime | None
    last_ended: Enrolment | None
    choices: list[Sequence]


def lead_card(*, lead: Lead, user: Any) -> LeadCard:
    """The lead's active sequence and its next step, the last one it left, and what it may join."""
    recent = list(
        Enrolment.objects.filter(lead=lead).select_related("sequence").order_by("-enrolled_at", "-pk")[:5]
    )
    active = next((e for e in recent if e.state == EnrolmentState.ACTIVE), None)
    ended = next((e for e in recent if e.state != EnrolmentState.ACTIVE), None)
    upcoming = None
    if active is not None:
        upcoming = next_step(
            active, list(Step.objects.filter(sequence_id=active.sequence_id).order_by("position"))
        )
    can_change = can_change_lead(user, lead)
    choices: list[Sequence] = []
    if can_change and active is None:
        choices = list(Sequence.objects.filter(active=True, steps__isnull=False).distinct().order_by("name"))
    return LeadCard(
        lead=lead,
        can_change=can_change,
        active=active,
        next_step=upcoming,
        next_run_at=active.next_run_at if active else None,
        last_ended=ended,
        choices=choices,
    )
