"""The public widget API: site key + Origin, CORS, limits, consent, identity, resends, schema."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from chatbot.api import ChatConversationThrottle, ChatIpThrottle
from chatbot.models import Conversation, Message
from demo.site import install_demo_site
from leadcrm.models import FollowUp, Interaction, InteractionKind, Lead
from tests.factories import make_manager

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


def post(client, path: str, data=None, origin: str = ORIGIN, token: str = ""):
    headers = {"HTTP_X_CHAT_TOKEN": token} if token else {}
    return client.post(
        path, json.dumps(data or {}), content_type="application/json", HTTP_ORIGIN=origin, **headers
    )


def start(client, site, token: str = "", **data):
    data.setdefault("visitor_id", "visitor-test-0001")
    response = post(client, url(site, "conversations/"), data, token=token)
    assert response.status_code == 200, response.content
    return response.json()


def say(client, site, token: str, text: str, **extra):
    return post(client, url(site, "conversation/messages/"), {"text": text, **extra}, token=token)


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
    assert ok["Access-Control-Allow-Headers"] == "Content-Type, X-Chat-Token"
    bad = client.options(url(site, "conversations/"), HTTP_ORIGIN="https://evil.example")
    assert bad.status_code == 403


def test_the_first_message_creates_a_chat_lead_with_browser_language_zone_and_pages(client, site) -> None:
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
    assert not Lead.objects.exists()  # opening the widget makes no lead
    assert say(client, site, data["token"], "hello").status_code == 200
    lead = Lead.objects.get(visitor_id="visitor-test-0001")
    assert (lead.source, lead.preferred_language, lead.timezone) == ("chat", "pt-BR", "America/Sao_Paulo")
    assert lead.live_until > timezone.now()
    urls = list(
        lead.interactions.filter(kind=InteractionKind.PAGE_VIEW).values_list("payload__url", flat=True)
    )
    assert sorted(urls) == sorted([f"{ORIGIN}/chat/demo/site/", f"{ORIGIN}/chat/demo/site/cakes/"])
    again = start(client, site, token=data["token"])  # a reload resumes with the server's token
    assert again["token"] == data["token"]
    assert again["resumed"] is True


def test_faq_message_is_answered_with_sentiment_stored(client, site) -> None:
    token = start(client, site)["token"]
    response = say(client, site, token, "Do you deliver?", client_id="c1")
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
    first = say(client, site, token, "Do you deliver?", client_id="same-id").json()
    second = say(client, site, token, "Do you deliver?", client_id="same-id").json()
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
    response = post(client, url(site, "conversation/messages/"), body, token=token)
    assert response.status_code == 400
    assert field in response.json()


def test_malformed_json_and_unknown_conversation(client, site) -> None:
    token = start(client, site)["token"]
    bad = client.post(
        url(site, "conversation/messages/"),
        "{not json",
        content_type="application/json",
        HTTP_ORIGIN=ORIGIN,
        HTTP_X_CHAT_TOKEN=token,
        token=token,
    )
    assert bad.status_code == 400
    missing = say(client, site, "nope", "hi")
    assert missing.status_code == 404
    bad_after = client.get(
        url(site, "conversation/messages/?after=x"), HTTP_ORIGIN=ORIGIN, HTTP_X_CHAT_TOKEN=token
    )
    assert bad_after.status_code == 400


def test_html_is_stored_and_returned_as_plain_text(client, site) -> None:
    token = start(client, site)["token"]
    attack = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    response = say(client, site, token, attack)
    assert response.json()["messages"][0]["text"] == attack  # the widget renders it with textContent
    assert response["Content-Type"] == "application/json"


def test_per_conversation_rate_limit(client, site, monkeypatch) -> None:
    monkeypatch.setattr(ChatConversationThrottle, "rate", "3/min", raising=False)
    token = start(client, site)["token"]
    codes = [say(client, site, token, f"hello {i}").status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]
    other = start(client, site, visitor_id="visitor-test-0002")["token"]  # another chat is unaffected
    assert say(client, site, other, "hi").status_code == 200


def test_per_ip_rate_limit(client, site, monkeypatch) -> None:
    monkeypatch.setattr(ChatIpThrottle, "rate", "2/min", raising=False)
    assert client.get(url(site, "config/"), HTTP_ORIGIN=ORIGIN).status_code == 200
    assert client.get(url(site, "config/"), HTTP_ORIGIN=ORIGIN).status_code == 200
    limited = client.get(url(site, "config/"), HTTP_ORIGIN=ORIGIN)
    assert limited.status_code == 429
    assert "Retry-After" in limited


def test_identify_needs_consent_and_stores_it_with_its_time(client, site) -> None:
    token = start(client, site)["token"]
    path = url(site, "conversation/identify/")
    refused = post(client, path, {"name": "Ada Lovelace", "email": "ada@example.com"}, token=token)
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
        token=token,
    )
    assert ok.status_code == 200
    lead = Lead.objects.get(email="ada@example.com")
    assert (lead.first_name, lead.last_name) == ("Ada", "Lovelace")
    assert lead.contact_consent
    assert lead.contact_consent_at >= before
    assert not lead.marketing_consent
    assert lead.marketing_consent_at is None
    consent = lead.consents.get()  # recorded with the exact wording shown and its version
    assert (consent.purpose, consent.source, consent.text_version) == ("contact", "widget", "1")
    assert consent.text == site.consent_wording("contact")
    assert "Rosa's Bakery" in consent.text
    bad_email = post(client, path, {"email": "not-an-email", "contact_consent": True}, token=token)
    assert bad_email.status_code == 400


def test_returning_visitor_with_the_earlier_token_is_greeted_by_the_name_they_gave(client, site) -> None:
    token = start(client, site)["token"]
    post(
        client,
        url(site, "conversation/identify/"),
        {"name": "Ada", "email": "a@example.com", "contact_consent": True},
        token=token,
    )
    post(client, url(site, "conversation/close/"), {"rating": 5}, token=token)
    again = start(client, site, token=token)  # the widget keeps the closed chat's token
    assert again["token"] != token
    assert ", Ada" in again["messages"][0]["text"]
    assert again["identified"] is True
    stranger = start(client, site)  # the same visitor id without the token: a stranger
    assert "Ada" not in stranger["messages"][0]["text"]
    assert stranger["identified"] is False


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
    response = post(client, url(site, "conversation/handoff/"), token=token)
    assert response.json()["status"] == "waiting"


def test_out_of_hours_handoff_books_a_callback_follow_up(client, site) -> None:
    manager = make_manager()  # nobody on duty and no owner: the least busy manager owns the promise
    site.business_hours = {"mon": [["09:00", "10:00"]]}
    site.save()
    token = start(client, site)["token"]
    messages = post(
        client, url(site, "conversation/messages/"), {"text": "talk to a human"}, token=token
    ).json()["messages"]
    callback = next(a for a in messages[-1]["actions"] if a["type"] == "callback")
    no_contact = post(
        client, url(site, "conversation/callback/"), {"due_at": callback["due_at"]}, token=token
    )
    assert no_contact.status_code == 400
    post(
        client,
        url(site, "conversation/identify/"),
        {"phone": "+49 30 1234", "contact_consent": True},
        token=token,
    )
    ok = post(client, url(site, "conversation/callback/"), {"due_at": callback["due_at"]}, token=token)
    assert ok.status_code == 200
    follow_up = FollowUp.objects.get()
    assert follow_up.assigned_to == manager
    assert follow_up.note.startswith("Chat callback")
    assert follow_up.due_at == datetime.fromisoformat(callback["due_at"])
    too_late = post(
        client,
        url(site, "conversation/callback/"),
        {"due_at": (timezone.now() + timedelta(days=30)).isoformat()},
        token=token,
    )
    assert too_late.status_code == 400


def test_feedback_no_flags_the_question_unanswered(client, site) -> None:
    token = start(client, site)["token"]
    reply = post(
        client, url(site, "conversation/messages/"), {"text": "Do you deliver?"}, token=token
    ).json()["messages"][1]
    response = post(
        client,
        url(site, "conversation/feedback/"),
        {"message_id": reply["id"], "helpful": False},
        token=token,
    )
    assert response.status_code == 200
    assert Message.objects.get(pk=reply["id"]).helpful is False
    assert Message.objects.get(sender="visitor").unanswered is True
    assert (
        post(
            client, url(site, "conversation/feedback/"), {"message_id": 999999, "helpful": True}, token=token
        ).status_code
        == 400
    )


def test_stated_interest_is_remembered_on_the_lead(client, site) -> None:
    token = start(client, site)["token"]
    post(
        client,
        url(site, "conversation/messages/"),
        {"text": "I'm interested in wedding cakes and catering"},
        token=token,
    )
    lead = Lead.objects.get(visitor_id="visitor-test-0001")
    assert lead.custom["interested_in"] == ["wedding cakes", "catering"]


def test_close_with_rating_clears_live_now(client, site) -> None:
    token = start(client, site)["token"]
    assert post(client, url(site, "conversation/close/"), {"rating": 6}, token=token).status_code == 400
    assert (
        post(
            client, url(site, "conversation/close/"), {"rating": 4, "comment": "Nice"}, token=token
        ).status_code
        == 200
    )
    conversation = Conversation.objects.get(token=token)
    assert conversation.rating == 4
    assert conversation.lead is None  # the visitor never wrote: no lead was made


def test_pageview_and_heartbeat(client, site) -> None:
    token = start(client, site)["token"]
    assert (
        post(
            client, url(site, "conversation/pageviews/"), {"url": "javascript:alert(1)"}, token=token
        ).status_code
        == 400
    )
    assert (
        post(
            client,
            url(site, "conversation/pageviews/"),
            {"url": f"{ORIGIN}/visit/", "title": "Visit"},
            token=token,
        ).status_code
        == 200
    )
    assert post(client, url(site, "conversation/heartbeat/"), token=token).status_code == 200
    conversation = Conversation.objects.get(token=token)
    assert conversation.current_url == f"{ORIGIN}/visit/"
    assert conversation.pending["pages"][-1]["url"] == f"{ORIGIN}/visit/"  # kept until there is a lead
    say(client, site, token, "hello")
    lead = Lead.objects.get(visitor_id="visitor-test-0001")
    urls = list(
        lead.interactions.filter(kind=InteractionKind.PAGE_VIEW).values_list("payload__url", flat=True)
    )
    assert urls == [f"{ORIGIN}/visit/"]


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
