"""Nothing is lost when the broker is away: the write commits, the request stays for the sweep."""

from __future__ import annotations

import pytest

from leadcrm.celery import app as celery_app
from leadcrm.models import Interaction, Lead
from leadcrm.services import record_interaction
from tests.factories import make_lead

pytestmark = pytest.mark.django_db


def test_interaction_is_stored_when_the_broker_is_unreachable(django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
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
