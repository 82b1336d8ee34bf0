from __future__ import annotations

import json
import re

import pytest
from rest_framework.test import APIClient

from accounts.services import create_token
from leadcrm.models import Interaction, Lead
from tests.factories import make_interaction, make_lead, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def as_user(api: APIClient, user) -> APIClient:
    api.force_authenticate(user)
    return api


def test_anonymous_is_refused(api: APIClient) -> None:
    assert api.get("/api/v1/leads/").status_code == 401


def test_token_authentication_works(api: APIClient, salesperson) -> None:
    token = create_token(user=salesperson, name="import script")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token.secret}")
    assert api.get("/api/v1/leads/").status_code == 200


def test_user_without_a_role_is_refused(api: APIClient) -> None:
    response = as_user(api, make_user(role=None)).get("/api/v1/leads/")
    assert response.status_code == 403
    assert "role" in response.json()["detail"]


def test_list_is_ordered_by_priority_and_paginated(api: APIClient, manager) -> None:
    low = make_lead(priority=10)
    high = make_lead(priority=90)
    data = as_user(api, manager).get("/api/v1/leads/").json()
    assert data["count"] == 2
    assert [row["id"] for row in data["results"]] == [high.pk, low.pk]


def test_filters_search_and_ordering(api: APIClient, manager) -> None:
    a = make_lead(company_name="Cedar Works", status="working", source="referral", priority=5)
    make_lead(company_name="Iron Labs", status="new", source="paid_ads", priority=50)
    client = as_user(api, manager)
    assert [r["id"] for r in client.get("/api/v1/leads/?status=working").json()["results"]] == [a.pk]
    assert [r["id"] for r in client.get("/api/v1/leads/?search=cedar").json()["results"]] == [a.pk]
    assert [r["id"] for r in client.get("/api/v1/leads/?source=referral&source=event").json()["results"]] == [
        a.pk
    ]
    assert client.get("/api/v1/leads/?ordering=priority").json()["results"][0]["id"] == a.pk


def test_unknown_filter_value_is_a_400_with_a_message(api: APIClient, manager) -> None:
    response = as_user(api, manager).get("/api/v1/leads/?status=sleeping")
    assert response.status_code == 400
    assert "status" in response.json()


def test_salesperson_sees_own_and_unassigned_only(api: APIClient, salesperson, other_salesperson) -> None:
    mine = make_lead(owner=salesperson)
    free = make_lead()
    theirs = make_lead(owner=other_salesperson)
    client = as_user(api, salesperson)
    ids = {r["id"] for r in client.get("/api/v1/leads/").json()["results"]}
    assert ids == {mine.pk, free.pk}
    assert client.get(f"/api/v1/leads/{theirs.pk}/").status_code == 404


def test_create_lead_and_bad_input_gets_field_errors(api: APIClient, salesperson) -> None:
    client = as_user(api, salesperson)
    ok = client.post(
        "/api/v1/leads/",
        {"first_name": "Grace", "email": "Grace@Example.com", "employee_count": 12},
        format="json",
    )
    assert ok.status_code == 201, ok.content
    assert ok.json()["email"] == "grace@example.com"
    assert Lead.objects.get(pk=ok.json()["id"]).owner == salesperson

    bad = client.post(
        "/api/v1/leads/",
        {"email": "nope", "employee_count": -4, "source": "carrier", "custom": [1]},
        format="json",
    )
    assert bad.status_code == 400
    assert {"email", "employee_count", "source", "custom"} <= set(bad.json())

    dup = client.post("/api/v1/leads/", {"email": "grace@example.com"}, format="json")
    assert dup.status_code == 400
    assert "can't be used" in str(dup.json())


def test_score_fields_are_read_only(api: APIClient, manager) -> None:
    lead = make_lead(priority=3)
    response = as_user(api, manager).patch(
        f"/api/v1/leads/{lead.pk}/", {"priority": 99, "rule_score": 99}, format="json"
    )
    assert response.status_code == 400  # refused by name, not silently dropped (was: 200)
    assert response.json() == {
        "priority": ["This field is read-only."],
        "rule_score": ["This field is read-only."],
    }
    lead.refresh_from_db()
    assert lead.priority == 3


def test_status_change_through_the_api_is_logged(api: APIClient, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    client = as_user(api, salesperson)
    bad = client.patch(f"/api/v1/leads/{lead.pk}/", {"status": "lost"}, format="json")
    assert bad.status_code == 400
    assert "lost_reason" in bad.json()
    ok = client.patch(f"/api/v1/leads/{lead.pk}/", {"status": "lost", "lost_reason": "Budget"}, format="json")
    assert ok.status_code == 200
    assert ok.json()["status"] == "lost"
    assert ok.json()["closed_at"] is not None


def test_salesperson_cannot_change_an_unclaimed_lead(api: APIClient, salesperson) -> None:
    lead = make_lead()
    response = as_user(api, salesperson).patch(f"/api/v1/leads/{lead.pk}/", {"city": "Oslo"}, format="json")
    assert response.status_code == 403
    assert "Claim" in response.json()["detail"]


def test_salesperson_cannot_give_a_lead_away(api: APIClient, salesperson, other_salesperson) -> None:
    lead = make_lead(owner=salesperson)
    response = as_user(api, salesperson).patch(
        f"/api/v1/leads/{lead.pk}/", {"owner": other_salesperson.pk}, format="json"
    )
    assert response.status_code == 400


def test_interactions_create_and_list(api: APIClient, salesperson) -> None:
    lead = make_lead(owner=salesperson, marketing_consent=True)  # email tracking needs it
    make_interaction(lead, "page_view")
    client = as_user(api, salesperson)
    created = client.post(
        f"/api/v1/leads/{lead.pk}/interactions/",
        {"kind": "email_open", "payload": {"subject": "Hi"}},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["kind"] == "email_open"
    listed = client.get(f"/api/v1/leads/{lead.pk}/interactions/").json()
    assert [r["kind"] for r in listed["results"]] == ["email_open", "page_view"]


def test_bad_interaction_is_a_400_and_nothing_is_stored(api: APIClient, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    client = as_user(api, salesperson)
    for body in (
        {"kind": "carrier_pigeon"},
        {"kind": "page_view", "payload": "not an object"},
        {"kind": "page_view", "sentiment": 3},
        {"kind": "page_view", "occurred_at": "2999-01-01T00:00:00Z"},
        {"kind": "purchase", "payload": {"amount": -5}},
    ):
        response = client.post(f"/api/v1/leads/{lead.pk}/interactions/", body, format="json")
        assert response.status_code == 400, body
    assert not Interaction.objects.exists()


def test_malformed_json_is_a_400(api: APIClient, manager) -> None:
    response = as_user(api, manager).generic(
        "POST", "/api/v1/leads/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400


def test_schema_and_docs_are_served(client) -> None:
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/leads/{id}/interactions/" in schema.content
    assert client.get("/api/v1/docs/").status_code == 200


def test_api_docs_load_swagger_ui_from_our_own_static_files(client) -> None:
    html = client.get("/api/v1/docs/").content.decode()
    scripts = re.findall(r'<script src="([^"]+)"', html) + re.findall(r'<link[^>]+href="([^"]+\.css)"', html)
    assert scripts, html[:500]
    # No CDN: works offline. Besides static files, the start-up script comes from the page's own URL
    # (?script=), so the Content-Security-Policy needs no inline-script exception.
    assert all(src.startswith(("/static/", "/api/v1/docs/?")) for src in scripts), scripts
    assert all(client.get(src).status_code == 200 for src in scripts)


def test_favicon_is_served(client) -> None:
    response = client.get("/favicon.ico", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0].endswith("favicon.svg")


def test_a_retried_event_with_an_idempotency_key_is_stored_and_counted_once(
    api, salesperson, django_capture_on_commit_callbacks
) -> None:
    as_user(api, salesperson)
    lead = make_lead(owner=salesperson)
    url = f"/api/v1/leads/{lead.pk}/interactions/"
    body = {"kind": "page_view", "payload": {"url": "/pricing"}}
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="evt-7f3a")
        retry = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="evt-7f3a")
        other = api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="evt-7f3b")
    assert (first.status_code, retry.status_code, other.status_code) == (201, 200, 201)
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]
    assert lead.interactions.count() == 2


def test_the_same_key_on_another_lead_is_another_event(api, salesperson) -> None:
    as_user(api, salesperson)
    a, b = make_lead(owner=salesperson), make_lead(owner=salesperson)
    for lead in (a, b):
        response = api.post(
            f"/api/v1/leads/{lead.pk}/interactions/",
            {"kind": "call"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k1",
        )
        assert response.status_code == 201
    assert a.interactions.count() == b.interactions.count() == 1


@pytest.mark.parametrize("key", ["has space", "x" * 101, "nul\x00byte", "ünïcode"])
def test_an_unusable_idempotency_key_is_a_400(api, salesperson, key) -> None:
    as_user(api, salesperson)
    lead = make_lead(owner=salesperson)
    response = api.post(
        f"/api/v1/leads/{lead.pk}/interactions/", {"kind": "call"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert not lead.interactions.exists()


# --- Bad input answers 400 with a message, never a 500 -------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first_name": "Ada", "custom": {"note": "a\u0000b"}}, "custom"),
        ({"first_name": "Ada", "custom": {"k\u0000": 1}}, "custom"),
        ({"first_name": "Ada", "custom": {"nested": [{"x": "\u0000"}]}}, "custom"),
        ({"first_name": "A\u0000da"}, "first_name"),
    ],
)
def test_nul_characters_anywhere_in_a_lead_are_a_400(api: APIClient, manager, body, field) -> None:
    response = as_user(api, manager).post(
        "/api/v1/leads/",
        data=json.dumps(body),  # json.dumps writes the NUL as \\u0000, as a client would
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Lead.objects.exists()


def test_nul_characters_in_an_interaction_payload_are_a_400(api: APIClient, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    response = as_user(api, salesperson).post(
        f"/api/v1/leads/{lead.pk}/interactions/",
        data='{"kind": "page_view", "payload": {"url": "/a\\u0000b"}}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "NUL" in str(response.json()["payload"])
    assert not lead.interactions.exists()


@pytest.mark.parametrize("offset", ["-16:21", "+15:59", "-23:59", "+00:00"])
def test_any_offset_python_reads_filters_instead_of_failing(api: APIClient, manager, offset: str) -> None:
    make_lead()
    response = as_user(api, manager).get("/api/v1/leads/", {"created_after": f"2020-01-01T00:00:00{offset}"})
    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_an_empty_lead_is_refused(api: APIClient, manager) -> None:
    response = as_user(api, manager).post("/api/v1/leads/", {}, format="json")
    assert response.status_code == 400
    assert "name, an email" in response.json()["non_field_errors"][0]
    assert not Lead.objects.exists()


def test_unknown_fields_are_refused_by_name(api: APIClient, manager) -> None:
    response = as_user(api, manager).post(
        "/api/v1/leads/", {"first_name": "Ada", "shoe_size": 42, "id": 7}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"id": ["This field is read-only."], "shoe_size": ["Unknown field."]}


def test_interactions_dated_before_1970_are_refused(api: APIClient, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    response = as_user(api, salesperson).post(
        f"/api/v1/leads/{lead.pk}/interactions/",
        {"kind": "call", "occurred_at": "1900-01-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 400
    assert "1970" in str(response.json()["occurred_at"])


def test_a_service_retry_with_the_same_event_id_returns_the_stored_event(salesperson) -> None:
    from leadcrm.services import record_interaction

    lead = make_lead(owner=salesperson)
    first = record_interaction(lead=lead, kind="call", client_event_id="evt-1")
    again = record_interaction(lead=lead, kind="call", client_event_id="evt-1")
    assert again.pk == first.pk
    assert lead.interactions.count() == 1
