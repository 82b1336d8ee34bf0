"""POST /api/v1/events/batch: who may send, idempotent retries, one answer per event, consent rule."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.services import create_token
from leadcrm.models import Interaction, InteractionKind, Lead, RecordedActivity
from leadcrm.services import NO_TRACKING_MESSAGE, anonymise_leads
from tests.factories import make_lead, make_user

pytestmark = pytest.mark.django_db

URL = "/api/v1/events/batch"


def batch(client, events, **headers):
    return client.post(URL, json.dumps({"events": events}), content_type="application/json", **headers)


def ev(lead: Lead | None = None, n: int = 1, kind: str = "page_view", **fields):
    event = {
        "event_id": f"evt-{n}",
        "kind": kind,
        "occurred_at": "2026-01-05T10:00:00Z",
        "payload": {"url": f"/p{n}"},
    }
    if lead is not None:
        event["lead_id"] = lead.pk
    event.update(fields)
    return event


def test_only_managers_or_holders_of_the_permission_may_send(client, manager, salesperson) -> None:
    lead = make_lead()
    assert batch(client, [ev(lead)]).status_code in (401, 403)
    client.force_login(salesperson)
    refused = batch(client, [ev(lead)])
    assert refused.status_code == 403
    assert "permission" in refused.json()["detail"]
    integration = make_user("integration")
    integration.user_permissions.add(Permission.objects.get(codename="ingest_events"))
    client.force_login(integration)
    assert batch(client, [ev(lead, 1)]).status_code == 200
    client.force_login(manager)
    assert batch(client, [ev(lead, 2)]).status_code == 200
    client.logout()
    secret = create_token(user=manager, name="shop sync").secret
    assert batch(client, [ev(lead, 3)], HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    assert Interaction.objects.filter(lead=lead).count() == 3


def test_a_retried_batch_is_never_double_counted(client, manager) -> None:
    client.force_login(manager)
    leads = [make_lead() for _ in range(3)]
    events = [ev(leads[i % 3], i) for i in range(30)]
    first = batch(client, events).json()
    assert (first["stored"], first["duplicates"], first["refused"]) == (30, 0, 0)
    assert {r["status"] for r in first["results"]} == {"stored"}
    again = batch(client, events).json()
    assert (again["stored"], again["duplicates"], again["refused"]) == (0, 30, 0)
    assert [r["event_id"] for r in again["results"]] == [e["event_id"] for e in events]
    assert Interaction.objects.filter(lead__in=leads).count() == 30
    # The same event id for another lead is another event.
    assert batch(client, [ev(make_lead(), 1)]).json()["stored"] == 1


def test_the_same_event_twice_in_one_batch_is_stored_once(client, manager) -> None:
    client.force_login(manager)
    lead = make_lead()
    body = batch(client, [ev(lead, 1), ev(lead, 1)]).json()
    assert [r["status"] for r in body["results"]] == ["stored", "duplicate"]
    assert Interaction.objects.filter(lead=lead).count() == 1


def test_every_refusal_says_why_and_the_others_are_still_stored(client, manager) -> None:
    client.force_login(manager)
    lead = make_lead(marketing_consent=False)
    erased = make_lead()
    anonymise_leads(lead_ids=[erased.pk])
    future = (timezone.now() + timedelta(days=2)).isoformat()
    events = [
        ev(lead, 0),
        ev(lead, 1, kind="hover"),
        ev(lead, 2, occurred_at="1969-12-31T23:59:59Z"),
        ev(lead, 3, occurred_at=future),
        ev(lead, 4, occurred_at="2026-01-05T10:00:00"),
        ev(lead, 5, occurred_at="yesterday"),
        ev(lead, 6, payload=["not", "an", "object"]),
        ev(lead, 7, payload={"text": "a\u0000b"}),
        ev(lead, 8, payload={"text": "\ud800"}),
        ev(None, 9, lead_id=999_999_999),
        ev(None, 10, email="nobody@example.com"),
        ev(lead, 11, email=lead.email),
        ev(lead, 12, kind="email_open"),
        ev(erased, 13),
        ev(lead, 14, event_id=""),
        ev(lead, 15, payload={"amount": -5}),
        "not an object",
        ev(None, 17, email=lead.email.upper()),
    ]
    body = batch(client, events).json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses[0] == "stored"
    assert statuses[17] == "stored"
    assert statuses[1:17] == ["refused"] * 16
    reasons = {r["index"]: r["reason"] for r in body["results"] if r["status"] == "refused"}
    assert "Unknown interaction kind" in reasons[1]
    assert "1970" in reasons[2]
    assert "future" in reasons[3]
    assert "time zone" in reasons[4]
    assert "ISO 8601" in reasons[5]
    assert "object" in reasons[6]
    assert "NUL" in reasons[7] or "invisible" in reasons[7]
    assert "surrogate" in reasons[8]
    assert "does not exist" in reasons[9]
    assert "No lead has this email" in reasons[10]
    assert "one of them" in reasons[11]
    assert reasons[12] == NO_TRACKING_MESSAGE
    assert "erased" in reasons[13]
    assert "event_id" in reasons[14]
    assert "amount" in reasons[15]
    assert "object" in reasons[16]
    assert (body["stored"], body["duplicates"], body["refused"]) == (2, 0, 16)
    assert Interaction.objects.filter(lead=lead).count() == 2
    assert not Interaction.objects.filter(lead=erased).exists()


def test_email_opens_are_stored_with_marketing_consent(client, manager) -> None:
    client.force_login(manager)
    lead = make_lead(marketing_consent=True)
    body = batch(client, [ev(lead, 1, kind="email_open"), ev(lead, 2, kind="email_click")]).json()
    assert body["stored"] == 2
    assert set(Interaction.objects.filter(lead=lead).values_list("kind", flat=True)) == {
        InteractionKind.EMAIL_OPEN,
        InteractionKind.EMAIL_CLICK,
    }


def test_touched_leads_get_their_last_activity_and_one_rescore_request(
    client, manager, django_capture_on_commit_callbacks
) -> None:
    client.force_login(manager)
    lead, untouched = make_lead(), make_lead()
    Lead.objects.filter(pk__in=[lead.pk, untouched.pk]).update(rescore_requested_at=None, scored_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        batch(
            client,
            [
                ev(lead, 1, occurred_at="2026-01-05T10:00:00Z"),
                ev(lead, 2, occurred_at="2026-01-07T10:00:00Z"),
            ],
        )
    lead.refresh_from_db()
    untouched.refresh_from_db()
    assert lead.last_activity_at.isoformat() == "2026-01-07T10:00:00+00:00"
    assert lead.scored_at is not None  # rescored by the task chain (eager here)
    assert untouched.scored_at is None
    assert untouched.rescore_requested_at is None
    assert not RecordedActivity.objects.exists()  # the outbox row was applied and removed


def test_the_request_itself_writes_the_outbox_row_not_the_lead(client, manager) -> None:
    """Concurrent batches over the same leads must not queue on the leads' row locks: the request
    stores the events and one outbox row; the lead is updated by the task after commit."""
    client.force_login(manager)
    lead = make_lead()
    Lead.objects.filter(pk=lead.pk).update(rescore_requested_at=None, last_activity_at=None)
    batch(client, [ev(lead, 1, occurred_at="2026-01-05T10:00:00Z")])  # on-commit callbacks not run
    lead.refresh_from_db()
    assert lead.last_activity_at is None
    assert lead.rescore_requested_at is None
    (row,) = RecordedActivity.objects.values_list("touched", flat=True)
    assert row == [[lead.pk, "2026-01-05T10:00:00+00:00"]]
    assert Interaction.objects.filter(lead=lead).count() == 1  # durable with the outbox row


@pytest.mark.parametrize(
    "body",
    [{"events": "x"}, {"nope": []}, [], {"events": []}],
)
def test_a_malformed_request_is_a_400(client, manager, body) -> None:
    client.force_login(manager)
    response = client.post(URL, json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert "events" in response.json()


def test_more_than_1000_events_is_a_400_and_1000_are_fine(client, manager) -> None:
    client.force_login(manager)
    lead = make_lead()
    too_many = [ev(lead, i) for i in range(1001)]
    assert batch(client, too_many).status_code == 400
    assert not Interaction.objects.filter(lead=lead).exists()
    body = batch(client, too_many[:1000]).json()
    assert body["stored"] == 1000
    assert Interaction.objects.filter(lead=lead).count() == 1000
