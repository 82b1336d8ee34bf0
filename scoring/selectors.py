"""Scoring reads for the admin pages: what a rule matches now, a preview for one lead, recompute progress."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.utils import timezone

from leadcrm.models import Lead
from scoring import engine
from scoring.models import RecomputeRun, Rule

MATCH_CHUNK = 200_000


def rule_match_count(rule: Rule, *, now: datetime | None = None) -> int:
    """How many leads the rule gives points to right now (evaluated live, in big chunks)."""
    now = now or timezone.now()
    spec = engine.RuleSpec.from_rule(rule)
    matched = 0
    for inputs in engine.stream_batches([spec], now=now, chunk_size=MATCH_CHUNK):
        evaluation = engine.evaluate([spec], inputs.columns, inputs.counts, len(inputs.ids))
        if evaluation.failures:
            raise ValueError(evaluation.failures[spec.id])
        matched += int(np.count_nonzero(evaluation.points[:, 0]))
    return matched


@dataclass(frozen=True)
class Preview:
    lead: Lead
    points: int
    reason: str
    count: float | None
    current_score: float


def rule_preview(rule: Rule, lead: Lead, *, now: datetime | None = None) -> Preview:
    """The points `rule` would give `lead` now, with the reason the salesperson would read."""
    now = now or timezone.now()
    spec = engine.RuleSpec.from_rule(rule)
    evaluation = engine.evaluate_batch(np.array([lead.pk], dtype=np.int64), [spec], now=now)
    if evaluation.failures:
        raise ValueError(evaluation.failures[spec.id])
    points = int(evaluation.points[0, 0])
    counts = evaluation.counts.get(spec.id)
    count = float(counts[0]) if counts is not None else None
    reason = ""
    if points:
        breakdown = engine.breakdown_json([spec], evaluation)[0]
        import json

        reason = json.loads(breakdown)[0]["reason"]
    return Preview(lead=lead, points=points, reason=reason, count=count, current_score=lead.rule_score)


def latest_run() -> RecomputeRun | None:
    """The newest full recompute (running or finished)."""
    return RecomputeRun.objects.order_by("-created_at", "-id").first()
