"""The async path with real parts: commit, on_commit enqueue to Redis, a real worker rescoring."""

from __future__ import annotations

import time

import pytest

from leadcrm.models import Lead
from leadcrm.services import record_interaction
from tests.factories import make_lead

pytestmark = [pytest.mark.integration]


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_recorded_interaction_is_rescored_by_a_real_worker(celery_worker_real) -> None:
    lead = make_lead()
    Lead.objects.filter(pk=lead.pk).update(rescore_requested_at=None, scored_at=None)

    record_interaction(lead=lead, kind="page_view", payload={"url": "/pricing"})

    assert wait_for(
        lambda: Lead.objects.filter(
            pk=lead.pk, scored_at__isnull=False, rescore_requested_at__isnull=True
        ).exists()
    )
