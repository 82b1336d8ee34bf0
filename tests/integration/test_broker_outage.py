"""Redis stopped under a stream of events: the worker lives on, and every lead is scored afterwards.

Real parts: a Redis server of the test's own (stopped and started again, with nothing kept on disk,
so every queued task is lost with it), a prefork Celery worker process as production runs it, and
the sweep sent as a task the way beat sends it. Nobody restarts the worker by hand.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.utils import timezone

from bench.processes import child_env
from config.celery import app as celery_app
from config.on_commit import enqueue_now, publisher
from leadcrm.models import Lead
from leadcrm.services import record_interaction
from scoring import defaults
from scoring.models import RecomputeRun
from scoring.runs import schedule_recompute
from tests.conftest import OwnRedis, celery_broker
from tests.factories import insert_leads, make_lead

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the worker process needs the shared test database"
    ),
]


@pytest.fixture
def alive_file(tmp_path: Path) -> Path:
    return tmp_path / "worker.alive"


@pytest.fixture
def worker(own_redis: OwnRedis, alive_file: Path) -> Iterator[subprocess.Popen]:
    queue = f"test-outage-{os.getpid()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-P", "prefork", "-c", "2",
         "-l", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=child_env(REDIS_URL=own_redis.url, CELERY_TASK_ALWAYS_EAGER="0", WORKER_ALIVE_FILE=str(alive_file)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    old_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    try:
        yield proc
    finally:
        celery_app.conf.task_default_queue = old_queue
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def wait_until(condition, timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def test_a_broker_outage_under_a_stream_of_events_delays_scores_but_loses_nothing(
    own_redis: OwnRedis, worker: subprocess.Popen, alive_file: Path
) -> None:
    defaults.install_default_rules()
    leads = [make_lead() for _ in range(60)]
    Lead.objects.update(rescore_requested_at=None, scored_at=None)
    with celery_broker(own_redis.url):
        # Events flow; the worker scores them as they come.
        for lead in leads[:20]:
            record_interaction(lead=lead, kind="page_view", payload={"url": "/pricing"})
        assert wait_until(lambda: not Lead.objects.filter(rescore_requested_at__isnull=False).exists(), 60)

        # Redis goes away mid-stream with a task in flight (a full recompute: its ack is outstanding),
        # then comes back empty.
        insert_leads(40_000)
        with transaction.atomic():
            run = schedule_recompute(reason="Rule changed")
        publisher().wait_idle()
        assert wait_until(lambda: RecomputeRun.objects.get(pk=run.pk).status == "running", 30, every=0.02)
        for i, lead in enumerate(leads[20:]):
            if i == 0:
                own_redis.stop()
            if i == 30:
                own_redis.start()
            record_interaction(lead=lead, kind="page_view", payload={"url": "/pricing"})
            time.sleep(0.1)
        publisher().wait_idle()
        last_event = timezone.now()

        # Beat sends the sweep every 10 s; here every 2 s until the worker has caught up.
        def caught_up() -> bool:
            enqueue_now("scoring.tasks.sweep_stale_scores")
            return not Lead.objects.filter(rescore_requested_at__isnull=False).exists()

        assert wait_until(caught_up, 60, every=2), "leads left unscored after the outage"
        assert worker.poll() is None, "the worker exited"
        assert time.time() - alive_file.stat().st_mtime < 15  # what the supervisor's liveness check reads
        assert Lead.objects.filter(scored_at__gte=last_event - timezone.timedelta(seconds=30)).count() >= 40
        assert not Lead.objects.filter(pk__in=[lead.pk for lead in leads], scored_at__isnull=True).exists()

        # The same worker, never restarted, still consumes new events as they come.
        fresh = make_lead()
        started = timezone.now()
        record_interaction(lead=fresh, kind="form_submit")
        assert wait_until(lambda: Lead.objects.filter(pk=fresh.pk, scored_at__gte=started).exists(), 20)
    assert worker.poll() is None
