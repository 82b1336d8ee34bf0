"""A backlog (an import's thousands of deliveries) is fanned out at once, each row leased to one task."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from webhooks import services
from webhooks.models import Delivery, DeliveryStatus, Event, Webhook

pytestmark = pytest.mark.django_db


def hook(url: str = "https://93.184.215.14/hook", name: str = "CRM sync") -> Webhook:
    return services.create_webhook(name=name, url=url, events=[Event.LEAD_CREATED], by=None)


def backlog(webhook: Webhook, n: int, now: datetime) -> list[int]:
    services.emit(
        Event.LEAD_CREATED, [{"lead": {"id": i}} for i in range(n)], webhook_ids=[webhook.pk], now=now
    )
    return list(Delivery.objects.filter(webhook=webhook).order_by("pk").values_list("pk", flat=True))


@pytest.fixture
def sent(monkeypatch) -> list[tuple]:
    """The tasks the fan-out queues, recorded instead of sent."""
    calls: list[tuple] = []

    def record(task_name: str, *args: object) -> bool:
        calls.append((task_name, *args))
        return True

    monkeypatch.setattr(services, "enqueue_now", record)
    return calls


def delivers(calls: list[tuple]) -> list[tuple[int, str]]:
    return [(pk, lease) for name, pk, lease in (c for c in calls if c[0] == "webhooks.tasks.deliver")]


def test_one_fan_out_queues_every_due_delivery_once(sent) -> None:
    now = timezone.now()
    ids = backlog(hook(), 1200, now - timedelta(seconds=5))

    assert services.sweep(now=now) == 1200

    tasks = delivers(sent)
    assert sorted(pk for pk, _ in tasks) == ids  # all of them, each once
    lease = now + timedelta(seconds=services.QUEUE_LEASE_SECONDS)
    assert {stamp for _, stamp in tasks} == {lease.isoformat()}
    assert set(Delivery.objects.values_list("next_attempt_at", flat=True)) == {lease}
    assert ("webhooks.tasks.deliver_due",) not in sent  # under FANOUT_MAX: no continuation


def test_a_second_fan_out_during_the_lease_queues_none_of_them_again(sent) -> None:
    now = timezone.now()
    backlog(hook(), 1200, now)
    services.sweep(now=now)
    sent.clear()

    assert services.sweep(now=now + timedelta(seconds=15)) == 0  # the next beat sweep
    assert services.sweep(now=now + timedelta(seconds=services.QUEUE_LEASE_SECONDS - 1)) == 0
    assert sent == []


def test_a_lost_tasks_row_is_queued_again_once_its_lease_runs_out(sent, allow_loopback, receiver) -> None:
    now = timezone.now()
    ids = backlog(hook(receiver.url), 1200, now)
    services.sweep(now=now)
    first = dict(delivers(sent))
    # Every task but the first 100 was lost (the broker dropped them): those rows are still pending.
    for pk in ids[:100]:
        assert services.attempt(pk, now=now, lease=datetime.fromisoformat(first[pk])) is not None
    assert len(receiver.requests) == 100
    sent.clear()

    later = now + timedelta(seconds=services.QUEUE_LEASE_SECONDS + 1)
    assert services.sweep(now=later) == 1100

    again = dict(delivers(sent))
    assert sorted(again) == ids[100:]  # the lost ones, each once; not the 100 attempted
    assert set(again.values()) == {(later + timedelta(seconds=services.QUEUE_LEASE_SECONDS)).isoformat()}


def test_a_stale_duplicate_task_does_not_deliver_twice(sent, allow_loopback, receiver) -> None:
    now = timezone.now()
    [pk] = backlog(hook(receiver.url), 1, now)
    services.sweep(now=now)
    [(_, old)] = delivers(sent)
    sent.clear()
    # Its task was slow to come (not lost): the lease ran out and a later fan-out leased it anew.
    later = now + timedelta(seconds=services.QUEUE_LEASE_SECONDS + 1)
    services.sweep(now=later)
    [(_, new)] = delivers(sent)
    assert new != old

    assert services.attempt(pk, now=later, lease=datetime.fromisoformat(old)) is None  # the stale task
    done = services.attempt(pk, now=later, lease=datetime.fromisoformat(new))
    assert done is not None
    assert done.status == DeliveryStatus.SUCCEEDED
    assert services.attempt(pk, now=later, lease=datetime.fromisoformat(new)) is None  # a duplicate
    assert services.attempt(pk, now=later + timedelta(days=1)) is None  # done: nothing is due
    assert len(receiver.requests) == 1


def test_one_webhook_cannot_take_a_whole_batch(sent) -> None:
    now = timezone.now()
    busy, quiet = hook(), hook(url="https://93.184.215.14/other", name="Other")
    backlog(busy, 1000, now - timedelta(minutes=5))  # an import, older than everything else
    services.emit(Event.LEAD_CREATED, [{"lead": {"id": 1}}] * 3, webhook_ids=[quiet.pk], now=now)

    lease, first = services.lease_due(now=now)

    owners = Counter(Delivery.objects.filter(pk__in=first).values_list("webhook_id", flat=True))
    assert owners == {busy.pk: services.PER_WEBHOOK_BATCH, quiet.pk: 3}  # the newcomer is in batch one
    assert services.sweep(now=now) == 1000 + 3 - len(first)  # and the fan-out takes the rest


def test_a_run_stops_at_its_limit_and_queues_itself_again(sent) -> None:
    now = timezone.now()
    backlog(hook(), 700, now)

    assert services.sweep(now=now, limit=600) == 600

    assert sent[-1] == ("webhooks.tasks.deliver_due",)
    sent.clear()
    assert services.sweep(now=now) == 100  # the continuation takes the rest
    assert len(delivers(sent)) == 100


def test_a_broker_outage_gives_the_unsent_rows_back_to_the_next_sweep(monkeypatch) -> None:
    now = timezone.now()
    backlog(hook(), 50, now)
    calls: list[tuple] = []

    def broker_fails_after_ten(task_name: str, *args: object) -> bool:
        calls.append(args)
        return len(calls) <= 10

    monkeypatch.setattr(services, "enqueue_now", broker_fails_after_ten)

    assert services.sweep(now=now) == 10
    assert len(services.due_ids(now=now)) == 40  # not leased: the next sweep sends them


@pytest.mark.django_db(transaction=True)
def test_the_embedded_shape_delivers_the_whole_backlog_in_the_background(allow_loopback, receiver) -> None:
    webhook = hook(receiver.url)
    n = 1200
    # Outside a transaction the nudge runs at once: one background thread, as after an import's commit.
    services.emit(Event.LEAD_CREATED, [{"lead": {"id": i}} for i in range(n)], webhook_ids=[webhook.pk])

    assert receiver.wait_for(n, timeout=120), len(receiver.requests)
    deadline = time.monotonic() + 10
    while (
        Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() < n and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == n
    time.sleep(0.2)
    assert len(receiver.requests) == n  # each once
