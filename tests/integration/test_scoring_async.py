"""Rule scoring end to end with real parts: commit, on_commit enqueue to Redis, a real worker."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from leadcrm.models import Lead
from leadcrm.services import record_interaction
from scoring import services
from scoring.models import RecomputeRun, Rule, ScoreSnapshot
from tests.factories import make_lead
from tests.scoring.helpers import make_rule

pytestmark = [pytest.mark.integration]


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_event_to_score_and_rule_change_through_redis_and_a_worker(celery_worker_real) -> None:
    make_rule(name="Pricing", kinds=[1], pattern="/pricing", points=5, cap=20, reason="Pricing {count}×")
    lead = make_lead()
    assert wait_for(lambda: Lead.objects.filter(pk=lead.pk, rescore_requested_at__isnull=True).exists())

    for _ in range(3):
        record_interaction(lead=lead, kind="page_view", payload={"url": "/pricing"})

    assert wait_for(
        lambda: Lead.objects.filter(pk=lead.pk, rule_score=15, rescore_requested_at__isnull=True).exists()
    )
    lead.refresh_from_db()
    assert lead.score_breakdown == [
        {"rule_id": lead.score_breakdown[0]["rule_id"], "rule": "Pricing", "category": "engagement",
         "points": 15, "reason": "Pricing 3×"}
    ]  # fmt: skip
    assert ScoreSnapshot.objects.filter(lead=lead, rule_score=15).exists()

    # A rule change: a full recompute runs on the worker and the progress record says done.
    rule = Rule.objects.get(name="Pricing")
    rule.points = 2
    services.save_rule(rule=rule)
    assert wait_for(lambda: RecomputeRun.objects.filter(status="done").exists())
    assert Lead.objects.get(pk=lead.pk).rule_score == 6
