"""The public widget API: site key + Origin, CORS, limits, consent, identity, resends, schema."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from chatbot.api import ChatIpThrottle, ChatVisitorThrottle
from chatbot.models import Message
from demo.site import install_demo_site
from leadcrm.models import FollowUp, Interaction, InteractionKind, Lead

pytestmark = pytest.mark.django_db

ORIGIN = "http://127.0.0.1:8000"
ALWAYS_OPEN = {d: [["00:00", "00:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture
def site():
    site = install_demo_site()
    site.business_hours = ALWAYS_OPEN
    site.save()
    return site


def url(site, path: str = "") -> str:
    return f"/api/v1/chat/sites/{site.public_key}/{path}"


def post(client, path: str, data=None, origin: str = ORIGIN):
    return client.post(path, json.dumps(data or {}), content_type="application/json", HTTP_ORIGIN=origin)


def start(client, site, **data):
    data.setdefault("visitor_id", "visitor-test-0001")
    response = post(client, url(site, "conversations/"), data)
    assert response.status_code == 200, response.content
    return response.json()


def test_config_needs_known_key_and_allowed_origin(client, site) -> None:
    ok = client.get(url(site, "config/"), HTTP_ORIGIN=ORIGIN)
    assert ok.status_code == 200
    assert ok.json()["name"] == "Rosa's Bakery & Café"
    assert ok["Access-Control-Allow-Origin"] == ORIGIN
    evil = client.get(url(site, "config/"), HTTP_ORIGIN="https://evil.example")
    assert evil.status_code == 403
    assert "Access-Control-Allow-Origin" not in evil
    assert client.get("/api/v1/chat/sites/pk_nope/config/", HTTP_ORIGIN=ORIGIN).status_code == 403
    assert client.get(url(site, "config/")).status_code == 403  # no Origin, no Referer


def test_same_origin_get_is_recognised_by_referer(client, site) -> None:
    assert client.get(url(site, "config/"), HTTP_REFERER=f"{ORIGIN}/chat/demo/site/").status_code == 200


def test_cors_preflight(client, site) -> None:
    ok = client.options(
        url(site, "conversations/"), HTTP_ORIGIN=ORIGIN, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert ok.status_code == 204
    assert ok["Access-Control-Allow-Headers"] == "Content-Type"
    bad = client.options(url(site, "conversations/"), HTTP_ORIGIN="https://evil.example")
    assert bad.status_code == 403


def test_start_creates_a_chat_lead_with_browser_language_and_zone_and_greets(client, site) -> None:
    data = start(
        client,
        site,
        language="pt-BR",
        timezone="America/Sao_Paulo",
        page_url=f"{ORIGIN}/chat/demo/site/cakes/",
        page_title="Cakes",
        trail=[{"url": f"{ORIGIN}/chat/demo/site/", "title": "Home"}],
    )
    assert data["messages"][0]["from"] == "bot"
    lead = Lead.objects.get(visitor_id="visitor-test-0001")
    assert (lead.source, lead.preferred_language, lead.timezone) == ("chat", "pt-BR", "America/Sao_Paulo")
    assert lead.live_until > timezone.now()
    urls = list(
        lead.interactions.filter(kind=InteractionKind.PAGE_VIEW).values_list("payload__url", flat=True)
    )
    assert sorted(urls) == sorted([f"{ORIGIN}/chat/demo/site/", f"{ORIGIN}/chat/demo/site/cakes/"])
    again = start(client, site)  # a reload resumes the same conversation
    assert again["token"] == data["token"]
    assert again["resumed"] is True


def test_faq_message_is_answered_with_sentiment_stored(client, site) -> None:
    token = start(client, site)["token"]
    response = post(
        client, url(site, f"conversations/{token}/messages/"), {"text": "Do you deliver?", "client_id": "c1"}
    )
    assert response.status_code == 200
    assert "Server-Timing" in response
    messages = response.json()["messages"]
    assert [m["from"] for m in messages] == ["visitor", "bot"]
    assert "We deliver within 10 km" in messages[1]["text"]
    interaction = Interaction.objects.get(kind=InteractionKind.CHAT_MESSAGE)
    assert interaction.payload["text"] == "Do you deliver?"
    assert interaction.payload["from"] == "visitor"
    assert interaction.sentiment is not None


def test_resend_after_a_drop_is_not_doubled(client, site) -> None:
    token = start(client, site)["token"]
    path = url(site, f"conversations/{token}/messages/")
    first = post(client, path, {"text": "Do you deliver?", "client_id": "same-id"}).json()
    second = post(client, path, {"text": "Do you deliver?", "client_id": "same-id"}).json()
    assert [m["id"] for m in first["messages"]] == [m["id"] for m in second["messages"]]
    assert Message.objects.filter(sender="visitor").count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "x" * 1001}, "text"),
        ({"client_id": "c"}, "text"),
        ({"text": 5, "client_id": ["a"]}, "client_id"),
    ],
)
def test_bad_message_input_is_a_400_with_a_message(client, site, body, field) -> None:
    token = start(client, site)["token"]
    response = post(client, url(site, f"conversations/{token}/messages/"), body)
    assert response.status_code == 400
    assert field in response.json()


def test_malformed_json_and_unknown_conversation(client, site) -> None:
    token = start(client, site)["token"]
    bad = client.post(
        url(site, f"conversations/{token}/messages/"),
        "{not json",
        content_type="application/json",
        HTTP_ORIGIN=ORIGIN,
    )
    assert bad.status_code == 400
    missing = post(client, url(site, "conversations/nope/messages/"), {"text": "hi"})
    assert missing.status_code == 404
    bad_after = client.get(url(site, f"conversations/{token}/messages/?after=x"), HTTP_ORIGIN=ORIGIN)
    assert bad_after.status_code == 400


def test_html_is_stored_and_returned_as_plain_text(client, site) -> None:
    token = start(client, site)["token"]
    attack = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    response = post(client, url(site, f"conversations/{token}/messages/"), {"text": attack})
    assert response.json()["messages"][0]["text"] == attack  # the widget renders it with textContent
    assert response["Content-Type"] == "application/json"


def test_per_visitor_rate_limit(client, site, monkeypatch) -> None:
    monkeypatch.setattr(ChatVisitorThrottle, "rate", "3/min", raising=False)
    token = start(client, site)["token"]
    path = url(site, f"conversations/{token}/messages/")
    codes = [post(client, path, {"text": f"hello {i}"}).status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]
    other = start(client, site, visitor_id="visitor-test-0002")["token"]  # another visitor is unaffected
    assert post(client, url(site, f"conversations/{other}/messages/"), {"text": "hi"}).status_code == 200


def test_per_ip_rate_limit(client, site, monkeypatch) -> None:
    monkeypatch.setattr(ChatIpThrottle, "rate", "2/min", raising=False)
    assert client.get(url(site, "config/"), HTTP_ORIGIN=ORIGIN).status_code == 200
    assert client.get(url(site, "config/"), HTTP_ORIGIN=ORIGIN).status_code == 200
    limited = client.get(url(site, "config/"), HTTP_ORIGIN=ORIGIN)
    assert limited.status_code == 429
    assert "Retry-After" in limited


def test_identify_needs_consent_and_stores_it_with_its_time(client, site) -> None:
    token = start(client, site)["token"]
    path = url(site, f"conversations/{token}/identify/")
    refused = post(client, path, {"name": "Ada Lovelace", "email": "ada@example.com"})
    assert refused.status_code == 400
    assert "contact_consent" in refused.json()
    assert not Lead.objects.filter(email="ada@example.com").exists()
    before = timezone.now()
    ok = post(
        client,
        path,
        {
            "name": "Ada Lovelace",
            "email": "ADA@example.com",
            "contact_consent": True,
            "marketing_consent": False,
        },
    )
    assert ok.status_code == 200
    lead = Lead.objects.get(email="ada@example.com")
    assert (lead.first_name, lead.last_name) == ("Ada", "Lovelace")
    assert lead.contact_consent
    assert lead.contact_consent_at >= before
    assert not lead.marketing_consent
    assert lead.marketing_consent_at is None
    bad_email = post(client, path, {"email": "not-an-email", "contact_consent": True})
    assert bad_email.status_code == 400


def test_identify_with_a_known_email_merges_into_that_lead(client, site) -> None:
    known = Lead.objects.create(email="known@example.com", first_name="Kim", source="web_form")
    token = start(client, site)["token"]
    post(client, url(site, f"conversations/{token}/messages/"), {"text": "Do you deliver?"})
    post(
        client,
        url(site, f"conversations/{token}/identify/"),
        {"email": "known@example.com", "contact_consent": True},
    )
    known.refresh_from_db()
    assert known.visitor_id == "visitor-test-0001"
    assert known.interactions.filter(kind=InteractionKind.CHAT_MESSAGE).count() == 1
    assert Lead.objects.count() == 1  # the anonymous chat lead was folded in


def test_returning_identified_visitor_is_greeted_by_name(client, site) -> None:
    token = start(client, site)["token"]
    post(
        client,
        url(site, f"conversations/{token}/identify/"),
        {"name": "Ada", "email": "a@example.com", "contact_consent": True},
    )
    post(client, url(site, f"conversations/{token}/close/"), {"rating": 5})
    again = start(client, site)
    assert ", Ada" in again["messages"][0]["text"]


def test_page_identity_is_used_only_with_a_valid_signature(client, site) -> None:
    email = "vip@example.com"
    forged = start(
        client,
        site,
        visitor_id="visitor-forged-01",
        identity_email=email,
        identity_name="Mallory",
        identity_signature="00" * 32,
    )
    assert forged["identity_verified"] is False
    assert "Mallory" not in forged["messages"][0]["text"]
    assert not Lead.objects.filter(email=email).exists()
    signed = start(
        client,
        site,
        visitor_id="visitor-signed-01",
        identity_email=email,
        identity_name="Victoria Page",
        identity_signature=site.identity_signature(email),
    )
    assert signed["identity_verified"] is True
    assert ", Victoria" in signed["messages"][0]["text"]
    assert Lead.objects.get(email=email).first_name == "Victoria"


def test_handoff_in_hours_waits_for_a_person(client, site) -> None:
    token = start(client, site)["token"]
    response = post(client, url(site, f"conversations/{token}/handoff/"))
    assert response.json()["status"] == "waiting"


def test_out_of_hours_handoff_books_a_callback_follow_up(client, site) -> None:
    site.business_hours = {"mon": [["09:00", "10:00"]]}
    site.save()
    token = start(client, site)["token"]
    messages = post(
        client, url(site, f"conversations/{token}/messages/"), {"text": "talk to a human"}
    ).json()["messages"]
    callback = next(a for a in messages[-1]["actions"] if a["type"] == "callback")
    no_contact = post(client, url(site, f"conversations/{token}/callback/"), {"due_at": callback["due_at"]})
    assert no_contact.status_code == 400
    post(
        client,
        url(site, f"conversations/{token}/identify/"),
        {"phone": "+49 30 1234", "contact_consent": True},
    )
    ok = post(client, url(site, f"conversations/{token}/callback/"), {"due_at": callback["due_at"]})
    assert ok.status_code == 200
    follow_up = FollowUp.objects.get()
    assert follow_up.note.startswith("Chat callback")
    assert follow_up.due_at == datetime.fromisoformat(callback["due_at"])
    too_late = post(
        client,
        url(site, f"conversations/{token}/callback/"),
        {"due_at": (timezone.now() + timedelta(days=30)).isoformat()},
    )
    assert too_late.status_code == 400


def test_feedback_no_flags_the_question_unanswered(client, site) -> None:
    token = start(client, site)["token"]
    reply = post(client, url(site, f"conversations/{token}/messages/"), {"text": "Do you deliver?"}).json()[
        "messages"
    ][1]
    response = post(
        client, url(site, f"conversations/{token}/feedback/"), {"message_id": reply["id"], "helpful": False}
    )
    assert response.status_code == 200
    assert Message.objects.get(pk=reply["id"]).helpful is False
    assert Message.objects.get(sender="visitor").unanswered is True
    assert (
        post(
            client, url(site, f"conversations/{token}/feedback/"), {"message_id": 999999, "helpful": True}
        ).status_code
        == 400
    )


def test_stated_interest_is_remembered_on_the_lead(client, site) -> None:
    token = start(client, site)["token"]
    post(
        client,
        url(site, f"conversations/{token}/messages/"),
        {"text": "I'm interested in wedding cakes and catering"},
    )
    lead = Lead.objects.get(visitor_id="visitor-test-0001")
    assert lead.custom["interested_in"] == ["wedding cakes", "catering"]


def test_close_with_rating_clears_live_now(client, site) -> None:
    token = start(client, site)["token"]
    assert post(client, url(site, f"conversations/{token}/close/"), {"rating": 6}).status_code == 400
    assert (
        post(client, url(site, f"conversations/{token}/close/"), {"rating": 4, "comment": "Nice"}).status_code
        == 200
    )
    lead = Lead.objects.get(visitor_id="visitor-test-0001")
    assert lead.live_until is None
    assert lead.conversations.get().rating == 4


def test_pageview_and_heartbeat(client, site) -> None:
    token = start(client, site)["token"]
    assert (
        post(
            client, url(site, f"conversations/{token}/pageviews/"), {"url": "javascript:alert(1)"}
        ).status_code
        == 400
    )
    assert (
        post(
            client,
            url(site, f"conversations/{token}/pageviews/"),
            {"url": f"{ORIGIN}/visit/", "title": "Visit"},
        ).status_code
        == 200
    )
    assert post(client, url(site, f"conversations/{token}/heartbeat/")).status_code == 200
    conversation = Lead.objects.get(visitor_id="visitor-test-0001").conversations.get()
    assert conversation.current_url == f"{ORIGIN}/visit/"


def test_every_public_endpoint_is_in_the_openapi_schema(client, manager) -> None:
    client.force_login(manager)
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    paths = [p for p in schema["paths"] if p.startswith("/api/v1/chat/")]
    for tail in [
        "config/",
        "conversations/",
        "messages/",
        "identify/",
        "handoff/",
        "pageviews/",
        "heartbeat/",
        "feedback/",
        "callback/",
        "close/",
    ]:
        assert any(p.endswith(tail) for p in paths), tail


def test_a_forged_x_forwarded_for_does_not_escape_the_per_ip_limit(client, site, monkeypatch) -> None:
    monkeypatch.setattr(ChatIpThrottle, "rate", "2/min", raising=False)
    codes = [
        client.get(
            url(site, "config/"), HTTP_ORIGIN=ORIGIN, HTTP_X_FORWARDED_FOR=f"203.0.113.{i}"
        ).status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 429]  # was: every made-up address passed
