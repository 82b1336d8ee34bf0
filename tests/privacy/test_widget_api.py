"""The widget's "What do you know about me?": only an identified visitor sees or erases anything."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.cache import cache

from audit.models import Entry
from chatbot import api as chat_api
from chatbot.models import Conversation
from leadcrm import services as crm
from privacy.models import PrivacyRequest

pytestmark = pytest.mark.django_db

ORIGIN = "https://rosa.example"


@pytest.fixture(autouse=True)
def _fresh_limits():
    cache.clear()
    chat_api._sites.clear()
    yield
    cache.clear()


def data_url(site, fmt: str = "json") -> str:
    return f"/api/v1/chat/sites/{site.public_key}/me/data?format={fmt}"


def erasure_url(site) -> str:
    return f"/api/v1/chat/sites/{site.public_key}/me/erasure"


def as_visitor(conversation: Conversation, origin: str = ORIGIN) -> dict[str, str]:
    return {"HTTP_ORIGIN": origin, "HTTP_X_CHAT_TOKEN": conversation.token}


def test_identified_visitor_downloads_their_data_as_json_and_csv(client, site, person) -> None:
    response = client.get(data_url(site), **as_visitor(person.conversation))
    assert response.status_code == 200, response.content
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response["Cache-Control"] == "no-store"
    data = response.json()
    assert data["lead"]["email"] == "grace@example.com"
    assert data["chat_transcripts"][0]["messages"][0]["text"] == "Hi, I am Grace Hopper"

    as_csv = client.get(data_url(site, "csv"), **as_visitor(person.conversation))
    assert as_csv.status_code == 200
    assert as_csv["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode())))
    assert {
        "record": "lead",
        "record_id": str(person.lead.pk),
        "field": "email",
        "value": "grace@example.com",
    } in rows

    assert client.get(data_url(site, "xml"), **as_visitor(person.conversation)).status_code == 400
    assert Entry.objects.filter(action="exported", lead_id=person.lead.pk).count() == 2


def test_a_bare_visitor_gets_nothing(client, site) -> None:
    lead = crm.create_lead(source="chat", visitor_id="visitor-bare-0001", first_name="Typed Name")
    bare = Conversation.objects.create(site=site, lead=lead, visitor_id="visitor-bare-0001")
    no_lead = Conversation.objects.create(site=site, visitor_id="visitor-bare-0002")
    for conversation in (bare, no_lead):
        download = client.get(data_url(site), **as_visitor(conversation))
        assert download.status_code == 403
        assert "leave your email" in download.json()["detail"]
        assert client.post(erasure_url(site), **as_visitor(conversation)).status_code == 403
    assert not PrivacyRequest.objects.exists()
    assert not Entry.objects.filter(action="exported").exists()


def test_a_verified_identity_counts_without_an_email(client, site) -> None:
    lead = crm.create_lead(source="chat", first_name="Known", phone="+49 30 1")
    conversation = Conversation.objects.create(site=site, lead=lead, identity_verified=True)
    assert client.get(data_url(site), **as_visitor(conversation)).status_code == 200


def test_token_and_origin_are_required(client, site, person) -> None:
    assert client.get(data_url(site), HTTP_ORIGIN=ORIGIN).status_code == 403  # no token
    assert (
        client.get(data_url(site), HTTP_ORIGIN=ORIGIN, HTTP_X_CHAT_TOKEN="guessed-token").status_code == 404
    )
    assert (
        client.get(
            data_url(site), **as_visitor(person.conversation, origin="https://evil.example")
        ).status_code
        == 403
    )
    # The visitor id the browser chose proves nothing.
    assert (
        client.get(data_url(site) + "&visitor_id=visitor-grace-0001", HTTP_ORIGIN=ORIGIN).status_code == 403
    )


def test_erasure_from_the_widget_is_a_request_for_a_manager(client, site, person) -> None:
    first = client.post(erasure_url(site), **as_visitor(person.conversation))
    assert first.status_code == 201, first.content
    assert first.json()["status"] == "open"
    again = client.post(erasure_url(site), **as_visitor(person.conversation))
    assert again.status_code == 200
    request = PrivacyRequest.objects.get()
    assert (request.lead, request.kind, request.status, request.channel) == (
        person.lead,
        "erasure",
        "open",
        "widget",
    )
    person.lead.refresh_from_db()
    assert person.lead.erased_at is None  # nothing erased until a manager acts


def test_an_erased_person_has_nothing_left_to_show(client, site, person, manager) -> None:
    from privacy import services

    services.erase_person(lead=person.lead, by=manager)
    assert client.get(data_url(site), **as_visitor(person.conversation)).status_code == 403
