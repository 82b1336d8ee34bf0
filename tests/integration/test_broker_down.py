"""Nothing is lost when the broker is away: the write commits, the request stays for the sweep."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone

from bench.synthetic import make_history
from config.celery import app as celery_app
from leadcrm.models import Interaction, Lead
from leadcrm.services import record_interaction
from scoring.ml import services as ml_services
from scoring.ml.models import TrainingRun
from tests.factories import make_lead

pytestmark = pytest.mark.django_db


def test_interaction_is_stored_when_the_broker_is_unreachable(django_capture_on_commit_callbacks) -> None:
    lead = make_lead()
    Lead.objects.filter(pk=lead.pk).update(rescore_requested_at=None)
    old = celery_app.conf.broker_url
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens there
    _reset_connection_pools()
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            record_interaction(lead=lead, kind="page_view", payload={"url": "/pricing"})
    finally:
        celery_app.conf.broker_url = old
        celery_app.conf.task_always_eager = True
        _reset_connection_pools()  # later tests must not inherit connections to the dead port
    assert len(callbacks) == 1  # the enqueue was attempted after commit, failed, and was swallowed
    assert Interaction.objects.filter(lead=lead).count() == 1
    lead.refresh_from_db()
    assert lead.rescore_requested_at is not None  # the sweep will find it


def _reset_connection_pools() -> None:
    """Drop the app's broker connection and producer pools so the next publish uses the current URL."""
    celery_app._after_fork()


@contextmanager
def _broker_down() -> Iterator[None]:
    old = celery_app.conf.broker_url
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    _reset_connection_pools()
    try:
        yield
    finally:
        celery_app.conf.broker_url = old
        celery_app.conf.task_always_eager = True
        _reset_connection_pools()


def test_retrain_requested_while_the_broker_is_down_is_sent_by_the_sweep(
    django_capture_on_commit_callbacks,
) -> None:
    make_history(200, now=timezone.now(), seed=3)
    with _broker_down(), django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = ml_services.request_retrain()
    assert len(callbacks) == 1  # tried after commit, failed quietly
    run.refresh_from_db()
    assert run.state == "queued"
    # Too fresh to re-send: the first send may still be on its way.
    assert ml_services.sweep_training_runs() == (0, 0)
    later = timezone.now() + timedelta(minutes=2)
    with _broker_down():
        assert ml_services.sweep_training_runs(now=later) == (0, 0)  # still away: stays queued
    assert ml_services.sweep_training_runs(now=later) == (1, 0)  # broker back (eager here): trained
    run.refresh_from_db()
    assert run.state == "done", run.message


def test_a_run_whose_worker_died_is_failed_so_retrain_works_again() -> None:
    started = timezone.now() - timedelta(hours=3)
    stuck = TrainingRun.objects.create(state="running", started_at=started)
    assert ml_services.sweep_training_runs() == (0, 1)
    stuck.refresh_from_db()
    assert stuck.state == "failed"
    assert "worker stopped" in stuck.message
