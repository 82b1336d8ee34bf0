"""A worker killed in the middle of a full recompute: another delivery finishes the run, exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.db import connection, transaction

from bench.processes import child_env
from config.celery import app as celery_app
from config.on_commit import publisher
from leadcrm.models import Lead
from scoring import defaults, services, store
from scoring.models import RecomputeRun
from scoring.runs import schedule_recompute
from tests.conftest import redis_reachable
from tests.factories import insert_leads

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the worker process needs the shared test database"
    ),
]
LEADS = 120_000


def _pool_children(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def test_a_recompute_whose_worker_is_killed_is_finished_by_another_delivery() -> None:
    if not redis_reachable():
        pytest.skip("needs REDIS_URL pointing at a reachable Redis (CI sets it)")
    defaults.install_default_rules()
    insert_leads(LEADS)
    queue = f"test-killed-{os.getpid()}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-P", "prefork", "-c", "1",
         "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=child_env(SCORING_RUN_LEASE_SECONDS="3", CELERY_TASK_ALWAYS_EAGER="0"),
        start_new_session=True,
    )  # fmt: skip
    old_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    celery_app.conf.task_always_eager = False
    try:
        with transaction.atomic():
            run = schedule_recompute(reason="Rule changed")
        publisher().wait_idle()
        deadline = time.monotonic() + 60
        while RecomputeRun.objects.get(pk=run.pk).status != "running":
            assert time.monotonic() < deadline, "the worker never started the run"
            time.sleep(0.05)
        time.sleep(0.3)  # well inside the first chunk
        children = _pool_children(worker.pid)
        assert children, "no pool process to kill"
        for pid in children:
            os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
        # The master starts a new pool process; the task comes back (acks_late) but the lease still
        # holds it, so it waits for the sweep, which hands it over once the lease has run out.
        deadline = time.monotonic() + 90
        while (current := RecomputeRun.objects.get(pk=run.pk)).status != "done":
            assert current.status != "failed", current.errors
            assert time.monotonic() < deadline, f"run stuck in {current.status}"
            services.sweep_stale_scores()
            time.sleep(1)
    finally:
        celery_app.conf.task_default_queue = old_queue
        celery_app.conf.task_always_eager = True
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    run = RecomputeRun.objects.get(pk=run.pk)
    assert run.attempts == 2
    assert run.done_leads == LEADS
    assert not Lead.objects.filter(scored_at__isnull=True).exists()  # every lead got its new score
    assert store.drop_orphan_stages(keep=[]) == []  # nothing left behind
