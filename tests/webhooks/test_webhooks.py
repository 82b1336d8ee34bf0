from __future__ import annotations

import json
import time
from datetime import timedelta

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from chatbot import services as chat
from chatbot.models import Conversation, Site
from leadcrm import services as crm
from leadcrm.models import FollowUp
from scoring import engine, store
from tests.factories import make_follow_up, make_lead, make_manager, make_user
from webhooks import guard, services
from webhooks.models import Delivery, DeliveryStatus, Event, Webhook
from webhooks.signing import SIGNATURE_HEADER, sign, verify

pytestmark = pytest.mark.django_db

ALL_EVENTS = list(Event.values)


def hook(url: str, events: list[str] | None = None) -> Webhook:
    return services.create_webhook(name="CRM sync", url=url, events=events or ALL_EVENTS, by=None)


# --- SSRF guard -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.5/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://localhost:8000/hook",  # a host name resolving to 127.0.0.1
        "ftp://93.184.215.14/",
        "http://user:pw@93.184.215.14/",
    ],
)
def test_registration_refuses_urls_that_do_not_reach_a_public_address(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        hook(url)
    assert "url" in refused.value.message_dict
    assert not Webhook.objects.exists()


def test_a_public_address_is_accepted() -> None:
    webhook = hook("https://93.184.215.14/hook")
    assert webhook.secret.startswith("whsec_")
    assert len(webhook.secret) > 30


def test_the_allow_list_admits_a_private_network_by_cidr_or_host(settings) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = ["10.0.0.0/8", "localhost"]
    assert guard.check_url("http://10.9.8.7:8080/x?y=1").address == "10.9.8.7"
    assert guard.check_url("http://localhost/").host == "localhost"
    with pytest.raises(guard.UnsafeUrl):
        guard.check_url("http://192.168.0.1/")


def test_delivery_checks_the_url_again_and_refuses_without_calling(settings, receiver) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    webhook = hook(receiver.url)
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = []  # the network is no longer allowed
    services.emit(Event.LEAD_CREATED, [{"lead": {"id": 1}}])
    delivery = Delivery.objects.get(webhook=webhook)

    done = services.attempt(delivery.pk)

    assert done is not None
    assert done.status == DeliveryStatus.FAILED
    assert done.error.startswith("Refused:")
    assert receiver.requests == []


def test_delivery_refuses_a_host_name_that_now_resolves_to_loopback(settings, receiver) -> None:
    # Registered while "localhost" was allowed by name; at delivery time it is not, and its
    # resolution (127.0.0.1 / ::1) is refused as if DNS had been rebound to loopback.
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = ["localhost"]
    webhook = hook(f"http://localhost:{receiver.port}/hook")
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = []
    services.emit(Event.LEAD_CREATED, [{"lead": {"id": 1}}])

    done = services.attempt(Delivery.objects.get(webhook=webhook).pk)

    assert done is not None
    assert done.status == DeliveryStatus.FAILED
    assert receiver.requests == []


# --- Signing, retries, replay -----------------------------------------------------------------------


def test_a_delivery_is_signed_verifiably_and_logged(allow_loopback, receiver) -> None:
    webhook = hook(receiver.url)
    lead = make_lead()
    services.emit(Event.LEAD_CREATED, [{"lead": services.lead_summary(lead)}])

    delivery = services.attempt(Delivery.objects.get(webhook=webhook).pk)

    assert delivery is not None
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.response_code == 200
    assert delivery.delivered_at
    assert delivery.duration_ms is not None
    headers, body = receiver.requests[0]
    header = headers[SIGNATURE_HEADER.lower()]
    timestamp = int(header.split(",")[0].removeprefix("t="))
    assert abs(timestamp - time.time()) < 60
    assert verify(webhook.secret, body, header, now=int(time.time()))
    assert not verify(webhook.secret, body + b" ", header, now=int(time.time()))  # body changed
    assert not verify("whsec_other", body, header, now=int(time.time()))  # wrong secret
    assert not verify(webhook.secret, body, header, now=int(time.time()) + 3600)  # too old: a replay
    # The documented recipe, by hand: HMAC-SHA256(secret, f"{t}.{body}") in hex.
    import hashlib
    import hmac

    expected = hmac.new(webhook.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert header == f"t={timestamp},v1={expected}" == sign(webhook.secret, body, timestamp)
    sent = json.loads(body)
    assert sent["event"] == "lead.created"
    assert sent["data"]["lead"]["id"] == lead.pk
    assert sent["id"] == str(delivery.event_id) == headers["x-leadcrm-delivery"]
    assert "email" not in json.dumps(sent["data"])  # no contact details in events


def test_failures_are_retried_with_exponential_backoff_then_marked_failed(
    settings, allow_loopback, receiver
) -> None:
    settings.WEBHOOKS_MAX_ATTEMPTS = 3
    settings.WEBHOOKS_RETRY_BASE_SECONDS = 30
    receiver.status = 500
    webhook = hook(receiver.url)
    t0 = timezone.now()
    services.emit(Event.LEAD_CREATED, [{"lead": {"id": 1}}], now=t0)
    pk = Delivery.objects.get(webhook=webhook).pk

    first = services.attempt(pk, now=t0)
    assert first is not None
    assert first.status == DeliveryStatus.PENDING
    assert first.attempts == 1
    assert first.response_code == 500
    assert "HTTP 500" in first.error
    assert first.next_attempt_at == t0 + timedelta(seconds=30)

    assert services.attempt(pk, now=t0 + timedelta(seconds=29)) is None  # not due yet
    assert services.due_ids(now=t0 + timedelta(seconds=29)) == []

    second = services.attempt(pk, now=t0 + timedelta(seconds=30))
    assert second is not None
    assert second.attempts == 2
    assert second.next_attempt_at == t0 + timedelta(seconds=30 + 60)  # doubled

    third = services.attempt(pk, now=t0 + timedelta(seconds=90))
    assert third is not None
    assert third.status == DeliveryStatus.FAILED
    assert third.next_attempt_at is None
    assert len(receiver.requests) == 3
    assert services.attempt(pk, now=t0 + timedelta(days=1)) is None  # failed stays failed


def test_an_attempt_claims_its_row_so_a_duplicate_nudge_sends_nothing(allow_loopback, receiver) -> None:
    receiver.status = 503
    webhook = hook(receiver.url)
    now = timezone.now()
    services.emit(Event.LEAD_CREATED, [{"lead": {"id": 1}}], now=now)
    pk = Delivery.objects.get(webhook=webhook).pk
    assert services.attempt(pk, now=now) is not None
    assert services.attempt(pk, now=now) is None
    assert len(receiver.requests) == 1


def test_replay_sends_the_same_event_again(allow_loopback, receiver) -> None:
    receiver.status = 500
    webhook = hook(receiver.url)
    services.emit(Event.LEAD_CREATED, [{"lead": {"id": 7}}])
    original = Delivery.objects.get(webhook=webhook)
    services.attempt(original.pk)
    receiver.status = 204

    copy = services.replay(delivery=original)
    done = services.attempt(copy.pk)

    assert done is not None
    assert done.status == DeliveryStatus.SUCCEEDED
    assert done.response_code == 204
    assert copy.event_id == original.event_id
    assert copy.replay_of_id == original.pk
    first, second = (json.loads(body) for _, body in receiver.requests)
    assert first == second  # the same event, byte for byte apart from the signature time


def test_a_slow_receiver_times_out_as_a_failed_attempt(settings, allow_loopback, receiver) -> None:
    settings.WEBHOOKS_TOTAL_TIMEOUT = 0.5
    receiver.delay = 2
    webhook = hook(receiver.url)
    services.emit(Event.LEAD_CREATED, [{"lead": {"id": 1}}])
    started = time.monotonic()
    done = services.attempt(Delivery.objects.get(webhook=webhook).pk)
    assert time.monotonic() - started < 1.9
    assert done is not None
    assert done.status == DeliveryStatus.PENDING
    assert "No answer" in done.error


def test_a_redirect_is_not_followed(allow_loopback, receiver) -> None:
    receiver.status = 302
    webhook = hook(receiver.url)
    services.emit(Event.LEAD_CREATED, [{"lead": {"id": 1}}])
    done = services.attempt(Delivery.objects.get(webhook=webhook).pk)
    assert done is not None
    assert done.status == DeliveryStatus.PENDING
    assert done.response_code == 302


@pytest.mark.django_db(transaction=True)
def test_a_slow_target_never_blocks_the_request_that_emitted_the_event(
    allow_loopback, receiver, client
) -> None:
    receiver.delay = 3
    webhook = hook(receiver.url, [Event.LEAD_CREATED])
    client.force_login(make_manager())

    started = time.monotonic()
    answer = client.post(
        "/api/v1/leads/", {"email": "slow@example.com", "first_name": "Slow"}, content_type="application/json"
    )
    took = time.monotonic() - started

    assert answer.status_code == 201, answer.content
    assert took < 2.0  # the receiver takes 3 s; the request did not wait for it
    delivery = Delivery.objects.get(webhook=webhook)
    assert delivery.event == Event.LEAD_CREATED  # stored with the lead, before any attempt
    assert receiver.wait_for(1, timeout=15)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.status == DeliveryStatus.SUCCEEDED:
            break
        time.sleep(0.05)
    assert delivery.status == DeliveryStatus.SUCCEEDED


# --- Every trigger emits its event ------------------------------------------------------------------


def events_of(webhook: Webhook) -> list[str]:
    return sorted(Delivery.objects.filter(webhook=webhook).values_list("event", flat=True))


def test_lead_created_status_changed_won_and_lost_are_emitted() -> None:
    webhook = hook("https://93.184.215.14/hook")
    lead = crm.create_lead(email="new@example.com")
    assert events_of(webhook) == ["lead.created"]

    crm.change_status(lead=lead, status="won")
    crm.change_status(lead=lead, status="working")
    crm.change_status(lead=lead, status="lost", lost_reason="Went with a competitor")

    assert events_of(webhook) == sorted(
        [
            "lead.created",
            "lead.status_changed",
            "lead.won",
            "lead.status_changed",
            "lead.status_changed",
            "lead.lost",
        ]
    )
    lost = Delivery.objects.get(webhook=webhook, event="lead.lost")
    assert lost.payload["data"]["status_from"] == "working"
    assert lost.payload["data"]["lost_reason"]


def test_an_unsubscribed_or_disabled_webhook_gets_nothing() -> None:
    only_won = hook("https://93.184.215.14/a", [Event.LEAD_WON])
    off = hook("https://93.184.215.14/b")
    Webhook.objects.filter(pk=off.pk).update(active=False)
    crm.create_lead(email="x@example.com")
    assert events_of(only_won) == []
    assert events_of(off) == []


def test_events_roll_back_with_the_change() -> None:
    webhook = hook("https://93.184.215.14/hook")

    def create_then_fail() -> None:
        with transaction.atomic():
            crm.create_lead(email="gone@example.com")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        create_then_fail()
    assert events_of(webhook) == []


def _rows(ids: list[int], grades: list[str]) -> store.ScoreRows:
    n = len(ids)
    return store.ScoreRows(
        engine.BatchScores(
            ids=np.array(ids),
            rule_score=np.full(n, 10.0),
            fit_score=np.full(n, 5.0),
            engagement_score=np.full(n, 5.0),
            grade=grades,
            breakdown=["[]"] * n,
            failures={},
        ),
        np.full(n, np.nan),
        ["[]"] * n,
        np.full(n, 1.0),
    )


def test_grade_changes_and_becoming_hot_are_emitted_from_the_score_write(settings) -> None:
    settings.WEBHOOKS_HOT_GRADES = ["A1"]
    webhook = hook("https://93.184.215.14/hook", [Event.GRADE_CHANGED, Event.BECAME_HOT])
    a, b, c = make_lead(), make_lead(), make_lead()
    store.write_scores(_rows([a.pk, b.pk, c.pk], ["C3", "B2", "A1"]), now=timezone.now())
    # First grades: three changes ("" → grade), one lead became hot.
    assert events_of(webhook) == ["lead.became_hot", *["lead.grade_changed"] * 3]
    Delivery.objects.all().delete()

    store.write_scores(_rows([a.pk, b.pk, c.pk], ["A1", "B2", "A2"]), now=timezone.now())

    moved = {
        d.payload["data"]["lead"]["id"]: d.payload["data"]
        for d in Delivery.objects.filter(event="lead.grade_changed")
    }
    assert set(moved) == {a.pk, c.pk}  # b kept its grade
    assert moved[a.pk]["grade_from"] == "C3"
    assert moved[a.pk]["grade_to"] == "A1"
    hot = Delivery.objects.filter(event="lead.became_hot")
    assert [d.payload["data"]["lead"]["id"] for d in hot] == [a.pk]  # c left the hot grade: no event


def test_a_chat_hand_off_is_emitted_once() -> None:
    webhook = hook("https://93.184.215.14/hook", [Event.CHAT_HANDED_OFF])
    site = Site.objects.create(name="Shop", allowed_origins=["https://shop.example"])
    conversation = Conversation.objects.create(site=site, visitor_id="v-1")
    chat.request_handoff(conversation=conversation)
    chat.request_handoff(conversation=Conversation.objects.get(pk=conversation.pk))
    delivery = Delivery.objects.get(webhook=webhook)
    data = delivery.payload["data"]
    assert data["conversation_id"] == conversation.pk
    assert data["site_id"] == site.pk
    assert data["lead"]["id"] == Conversation.objects.get(pk=conversation.pk).lead_id


def test_overdue_follow_ups_are_emitted_once_each() -> None:
    webhook = hook("https://93.184.215.14/hook", [Event.FOLLOW_UP_OVERDUE])
    lead = make_lead()
    now = timezone.now()
    soon = make_follow_up(lead, due_at=now + timedelta(minutes=5))
    later = make_follow_up(lead, due_at=now + timedelta(minutes=50))
    FollowUp.objects.create(lead=lead, due_at=now + timedelta(minutes=6), done_at=now)  # done: never

    assert services.emit_overdue_follow_ups(now=now) == 0
    services.emit_overdue_follow_ups(now=now + timedelta(minutes=10))
    services.emit_overdue_follow_ups(now=now + timedelta(minutes=11))
    services.emit_overdue_follow_ups(now=now + timedelta(hours=1))
    services.emit_overdue_follow_ups(now=now + timedelta(hours=2))

    emitted = [
        d.payload["data"]["follow_up"]["id"] for d in Delivery.objects.filter(webhook=webhook).order_by("pk")
    ]
    assert emitted == [soon.pk, later.pk]


# --- Manager pages ----------------------------------------------------------------------------------


def test_managers_register_webhooks_and_loopback_is_refused_on_the_page(client) -> None:
    client.force_login(make_manager())
    refused = client.post(
        reverse("webhooks:index"),
        {"name": "Local", "url": "http://127.0.0.1:9/x", "events": ["lead.created"], "active": "on"},
    )
    assert refused.status_code == 400
    assert b"private, loopback" in refused.content
    assert not Webhook.objects.exists()

    added = client.post(
        reverse("webhooks:index"),
        {
            "name": "Sync",
            "url": "https://93.184.215.14/x",
            "events": ["lead.created", "lead.won"],
            "active": "on",
        },
    )
    webhook = Webhook.objects.get()
    assert added.status_code == 302
    assert added["Location"] == reverse("webhooks:detail", args=[webhook.pk])
    page = client.get(reverse("webhooks:detail", args=[webhook.pk]))
    assert page.status_code == 200
    assert webhook.secret.encode() not in page.content
    revealed = client.get(reverse("webhooks:detail", args=[webhook.pk]) + "?reveal=1")
    assert webhook.secret.encode() in revealed.content


def test_the_delivery_log_shows_status_in_the_readers_zone_and_replays(
    client, settings, allow_loopback, receiver
) -> None:
    client.force_login(make_manager())
    webhook = hook(receiver.url)
    services.send_test(webhook=webhook)
    delivery = Delivery.objects.get(webhook=webhook)
    services.attempt(delivery.pk)

    page = client.get(reverse("webhooks:detail", args=[webhook.pk]) + "?tz=Asia/Tokyo")
    assert b"Times in Asia/Tokyo" in page.content
    assert b"Delivered" in page.content
    assert b"HTTP 200" in page.content

    replayed = client.post(reverse("webhooks:replay", args=[delivery.pk]))
    assert replayed.status_code == 302
    assert Delivery.objects.filter(replay_of=delivery).count() == 1


def test_salespeople_cannot_see_webhooks(client) -> None:
    client.force_login(make_user())
    assert client.get(reverse("webhooks:index")).status_code == 403


def test_webhook_changes_are_in_the_audit_trail_without_the_secret() -> None:
    from django.db import connection

    from audit.models import Entry

    if connection.vendor != "postgresql":
        pytest.skip("row-level audit needs PostgreSQL")
    webhook = hook("https://93.184.215.14/hook")
    services.update_webhook(
        webhook=webhook,
        name="Renamed",
        url=webhook.url,
        events=webhook.events,
        active=False,
        rotate_secret=True,
    )
    created = Entry.objects.get(action="created", target_type="webhooks.webhook")
    changed = Entry.objects.get(action="changed", target_type="webhooks.webhook")
    assert created.after["secret"] == "(hidden)"
    assert changed.before["name"] == "CRM sync"
    assert changed.after["name"] == "Renamed"
    assert changed.after["active"] is False
    assert changed.after["secret"] == "(hidden)"
    webhook.refresh_from_db()
    assert webhook.secret not in str(list(Entry.objects.values_list("before", "after")))


def test_the_demo_receiver_keeps_signed_deliveries_and_refuses_unsigned_ones(client, settings) -> None:
    from django.core.cache import cache

    cache.clear()
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    path = reverse("demo:webhook_receiver")
    webhook = hook(f"http://127.0.0.1:8000{path}")
    body = b'{"event":"webhook.test","id":"1"}'
    signed = sign(webhook.secret, body, int(time.time()))

    good = client.post(
        path,
        body,
        content_type="application/json",
        HTTP_X_LEADCRM_SIGNATURE=signed,
        HTTP_X_LEADCRM_EVENT="webhook.test",
    )
    bad = client.post(path, body, content_type="application/json", HTTP_X_LEADCRM_SIGNATURE="t=1,v1=00")

    assert good.status_code == 204
    assert bad.status_code == 401
    assert client.get(path).status_code == 302  # the log is for managers
    client.force_login(make_manager())
    page = client.get(path)
    assert page.content.count(b"webhook.test") >= 2
    assert b"Valid" in page.content
    assert b"Invalid" in page.content
