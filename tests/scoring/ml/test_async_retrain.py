"""The retrain path with real parts: commit, on_commit enqueue to Redis, a real worker training."""

from __future__ import annotations

import time

import pytest
from django.db import transaction
from django.utils import timezone

from bench.synthetic import make_history
from scoring.ml import services
from scoring.ml.models import ModelVersion, TrainingRun

pytestmark = [pytest.mark.integration]


def test_retrain_requested_in_a_transaction_is_trained_by_a_real_worker(celery_worker_real):
    make_history(300, now=timezone.now(), seed=7)
    with transaction.atomic():
        run = services.request_retrain()
        assert services.request_retrain().pk == run.pk  # a second click joins the queued run
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if not run.is_active:
            break
        time.sleep(0.2)
    assert run.state == "done", run.message
    assert run.progress == 1.0
    assert ModelVersion.objects.filter(is_promoted=True, pk=run.version_id).exists()
    assert TrainingRun.objects.count() == 1
