"""The batch events' outbox: last activity and rescore requests applied after commit, coalesced."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.cache import cache

from config import on_commit
from leadcrm import services
from leadcrm.models import Lead, RecordedActivity
from leadcrm.services import BulkEvent, apply_recorded_activity, record_interactions_bulk
from leadcrm.tasks import apply_recorded_activity as apply_task
from tests.factories import make_lead

pytestmark = pytest.mark.django_db


def at(day: int) -> datetime:
    return datetime(2026, 1, day, 10, tzinfo=UTC)


def event(lead: Lead, n: int, day: int) -> BulkEvent:
    return BulkEvent(lead_id=lead.pk, kind=1, occurred_at=at(day), client_event_id=f"e{n}", payload={})


@pytest.fixture(autouse=True)
def _no_nudge_key():
    cache.delete(services.APPLY_ACTIVITY_NUDGE)
    yield
    cache.delete(services.APPLY_ACTIVITY_NUDGE)


def test_many_batches_are_applied_at_once_newest_event_wins() -> None:
    a, b = make_lead(), make_lead()
    Lead.objects.filter(pk__in=[a.pk, b.pk]).update(last_activity_at=at(3), rescore_requested_at=None)
    record_interactions_bulk(events=[event(a, 1, 5), event(b, 2, 1)])
    record_interactions_bulk(events=[event(a, 3, 4), event(a, 4, 9)])
    assert RecordedActivity.objects.count() == 2
    assert apply_recorded_activity() == (2, False)
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.last_activity_at == at(9)
    assert b.last_activity_at == at(3)  # an older event never moves last activity back
    assert a.rescore_requested_at is not None
    assert b.rescore_requested_at is not None
    assert not RecordedActivity.objects.exists()


def test_a_lead_deleted_meanwhile_is_skipped_and_its_row_still_removed() -> None:
    kept, gone = make_lead(), make_lead()
    record_interactions_bulk(events=[event(kept, 1, 5), event(gone, 2, 5)])
    Lead.objects.filter(pk=gone.pk).delete()
    assert apply_recorded_activity() == (1, False)
    assert not RecordedActivity.objects.exists()


def test_rows_beyond_the_rounds_are_left_and_said(monkeypatch) -> None:
    lead = make_lead()
    monkeypatch.setattr(services, "APPLY_ACTIVITY_ROWS", 1)
    for n in range(3):
        record_interactions_bulk(events=[event(lead, n, 5)])
    assert apply_recorded_activity(max_rounds=2) == (2, True)
    assert RecordedActivity.objects.count() == 1
    assert apply_recorded_activity() == (1, False)


def test_commits_while_a_nudge_is_on_its_way_send_no_second_task(django_capture_on_commit_callbacks) -> None:
    sent: list[str] = []
    lead = make_lead()
    real = on_commit._named_enqueue

    def spy(task_name, args):
        sent.append(task_name)
        return lambda: None

    try:
        on_commit._named_enqueue = spy
        with django_capture_on_commit_callbacks(execute=True):
            record_interactions_bulk(events=[event(lead, 1, 5)])
        with django_capture_on_commit_callbacks(execute=True):
            record_interactions_bulk(events=[event(lead, 2, 5)])
        assert sent == [services.APPLY_ACTIVITY_TASK]  # the second commit found the nudge on its way
        on_commit.nudge_received(services.APPLY_ACTIVITY_NUDGE)  # the task started
        with django_capture_on_commit_callbacks(execute=True):
            record_interactions_bulk(events=[event(lead, 3, 5)])
        assert sent == [services.APPLY_ACTIVITY_TASK] * 2  # a commit after that nudges again
    finally:
        on_commit._named_enqueue = real


def test_the_task_applies_what_a_lost_nudge_left(django_capture_on_commit_callbacks) -> None:
    """The beat sweep runs the same task: waiting rows are applied even if no nudge ever came."""
    lead = make_lead()
    Lead.objects.filter(pk=lead.pk).update(last_activity_at=None)
    record_interactions_bulk(events=[event(lead, 1, 6)])  # commit callbacks never run: nudge lost
    cache.add(services.APPLY_ACTIVITY_NUDGE, 1, timeout=60)  # and a stale key says "on its way"
    assert apply_task() == 1
    lead.refresh_from_db()
    assert lead.last_activity_at == at(6)
    assert cache.get(services.APPLY_ACTIVITY_NUDGE) is None  # later commits nudge again
