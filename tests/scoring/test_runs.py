"""Full-recompute runs survive their worker: leases, takeover, a limit on attempts, no leftovers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from scoring import runs, services, store
from scoring.models import RecomputeRun
from tests.factories import make_lead

pytestmark = pytest.mark.django_db


def test_a_run_is_taken_once_while_its_worker_renews_the_lease() -> None:
    run = RecomputeRun.objects.create(reason="test")
    now = timezone.now()
    assert runs.claim_run(run.pk, now=now)
    assert not runs.claim_run(run.pk, now=now + timedelta(seconds=5))  # a redelivery while it runs
    run.refresh_from_db()
    assert (run.status, run.attempts) == ("running", 1)
    assert run.lease_expires_at == now + runs.lease()


def test_a_run_whose_worker_died_is_taken_over_after_its_lease_then_failed_after_three_tries() -> None:
    run = RecomputeRun.objects.create(reason="Rule changed")
    now = timezone.now()
    for attempt in range(1, runs.MAX_ATTEMPTS + 1):
        assert runs.claim_run(run.pk, now=now), attempt
        now += runs.lease() + timedelta(seconds=1)  # the worker was killed: no renewal
    assert not runs.claim_run(run.pk, now=now)
    run.refresh_from_db()
    assert run.status == "failed"
    assert "Stopped after 3 attempts" in run.errors[0]["error"]
    assert run.lease_expires_at is None


def test_the_sweep_restarts_abandoned_runs(monkeypatch) -> None:
    sent: list[tuple[str, tuple]] = []
    monkeypatch.setattr(services, "enqueue_now", lambda name, *args: sent.append((name, args)) or True)
    now = timezone.now()
    lost = RecomputeRun.objects.create(
        reason="killed",
        status="running",
        started_at=now - timedelta(hours=1),
        lease_expires_at=now - timedelta(seconds=1),
    )
    alive = RecomputeRun.objects.create(
        reason="alive", status="applying", started_at=now, lease_expires_at=now + timedelta(minutes=1)
    )
    never_sent = RecomputeRun.objects.create(reason="queued", created_at=now - timedelta(minutes=5))
    services.sweep_stale_scores(now=now)
    restarted = {args[0] for name, args in sent if name == runs.RECOMPUTE_TASK}
    assert restarted == {lost.pk, never_sent.pk}
    assert alive.pk not in restarted


@pytest.mark.skipif(connection.vendor != "postgresql", reason="stage tables are PostgreSQL's")
def test_the_sweep_drops_stage_tables_of_runs_no_worker_runs() -> None:
    orphan = RecomputeRun.objects.create(reason="died", status="failed")
    running = RecomputeRun.objects.create(
        reason="alive",
        status="running",
        started_at=timezone.now(),
        lease_expires_at=timezone.now() + timedelta(minutes=1),
    )
    store.RecomputeStage(orphan.pk)
    store.RecomputeStage(running.pk)
    services.sweep_stale_scores()
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE %s", [store.STAGE_PREFIX + "%"])
        left = {name for (name,) in cursor.fetchall()}
    assert left == {f"{store.STAGE_PREFIX}{running.pk}"}
    store.RecomputeStage(running.pk).drop()


def test_a_direct_recompute_holds_a_lease_and_releases_it() -> None:
    make_lead()
    run = services.recompute_all(reason="test")
    assert (run.status, run.lease_expires_at) == ("done", None)
