"""Issue 14, hole 3: a visitor id is not enough to read a visitor's open chat, and no secret is in
a URL. Resuming needs the token the server issued, sent in the X-Chat-Token header (or, for the
websocket, its first frame); URL paths carry no token and the config takes no visitor id."""

from __future__ import annotations

import json

import pytest
from channels.routing import URLRouter
from django.urls import get_resolver

from chatbot import api, services
from chatbot.models import Conversation, Site
from chatbot.routing import websocket_urlpatterns
from demo.site import install_demo_site
from tests.chatbot.test_services import run_in_own_loop

ORIGIN = "http://127.0.0.1:8000"
ALWAYS_OPEN = {d: [["00:00", "00:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture
def site(db):
    site = install_demo_site()
    site.business_hours = ALWAYS_OPEN
    site.save()
    return site


def post(client, site, path: str, data=None, token: str = ""):
    headers = {"HTTP_X_CHAT_TOKEN": token} if token else {}
    return client.post(
        f"/api/v1/chat/sites/{site.public_key}/{path}",
        json.dumps(data or {}),
        content_type="application/json",
        HTTP_ORIGIN=ORIGIN,
        **headers,
    )


@pytest.mark.django_db
def test_the_visitor_id_alone_does_not_resume_or_read_a_chat(client, site) -> None:
    victim = post(client, site, "conversations/", {"visitor_id": "visitor-known-0001"}).json()
    post(client, site, "conversation/messages/", {"text": "My order number is 4711"}, victim["token"])

    attacker = post(client, site, "conversations/", {"visitor_id": "visitor-known-0001"}).json()
    assert attacker["resumed"] is False
    assert attacker["token"] != victim["token"]  # was: the victim's token and last 50 messages
    assert "4711" not in json.dumps(attacker)


@pytest.mark.django_db
def test_the_issued_token_in_the_header_resumes(client, site) -> None:
    first = post(client, site, "conversations/", {"visitor_id": "visitor-known-0002"}).json()
    post(client, site, "conversation/messages/", {"text": "Do you deliver?"}, first["token"])
    again = post(client, site, "conversations/", {}, first["token"]).json()
    assert again["resumed"] is True
    assert again["token"] == first["token"]
    assert "Do you deliver?" in [m["text"] for m in again["messages"]]
    read = client.get(
        f"/api/v1/chat/sites/{site.public_key}/conversation/messages/",
        HTTP_ORIGIN=ORIGIN,
        HTTP_X_CHAT_TOKEN=first["token"],
    )
    assert read.status_code == 200
    assert len(read.json()["messages"]) >= 3


@pytest.mark.django_db
def test_conversation_endpoints_need_the_header_and_a_token_of_this_site(client, site) -> None:
    token = post(client, site, "conversations/", {}).json()["token"]
    assert post(client, site, "conversation/messages/", {"text": "hi"}).status_code == 403
    assert post(client, site, "conversation/heartbeat/").status_code == 403
    assert post(client, site, "conversation/messages/", {"text": "hi"}, token + "x").status_code == 404
    other = Site.objects.create(name="Other", allowed_origins=[ORIGIN])
    assert post(client, other, "conversation/messages/", {"text": "hi"}, token).status_code == 404
    assert post(client, site, "conversation/messages/", {"text": "hi"}, token).status_code == 200


@pytest.mark.django_db
def test_the_token_header_is_allowed_by_cors(client, site) -> None:
    preflight = client.options(
        f"/api/v1/chat/sites/{site.public_key}/conversation/messages/",
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type, x-chat-token",
    )
    assert preflight.status_code == 204
    assert "X-Chat-Token" in preflight["Access-Control-Allow-Headers"]


def test_no_chat_url_carries_a_token_or_a_visitor_id() -> None:
    patterns = [str(p.pattern) for p in get_resolver().url_patterns for p in _flatten(p)]
    chat = [p for p in patterns if "chat" in p]
    assert chat
    assert not [p for p in chat if "token" in p or "visitor" in p.replace("ws/chat/visitor/", "")]
    assert [str(p.pattern) for p in websocket_urlpatterns][0] == "ws/chat/visitor/"


def _flatten(pattern, prefix: str = ""):
    inner = getattr(pattern, "url_patterns", None)
    if inner is None:
        yield type("P", (), {"pattern": prefix + str(pattern.pattern)})
        return
    for p in inner:
        yield from _flatten(p, prefix + str(pattern.pattern))


@pytest.mark.django_db
def test_config_reads_no_visitor_id_from_the_url(client, site) -> None:
    from leadcrm.models import Lead, Segment

    vip = Segment.objects.create(name="VIP")
    lead = Lead.objects.create(email="vip@example.com", visitor_id="visitor-vip-00001")
    vip.memberships.create(lead=lead)
    site.proactive_messages.create(text="VIP offer for you", segment=vip)
    body = client.get(
        f"/api/v1/chat/sites/{site.public_key}/config/?visitor_id=visitor-vip-00001", HTTP_ORIGIN=ORIGIN
    ).json()
    assert "VIP offer for you" not in [p["text"] for p in body["proactive"]]


@pytest.mark.django_db(transaction=True)
def test_the_visitor_socket_takes_the_token_in_its_first_frame_only(site) -> None:
    from channels.testing import WebsocketCommunicator

    conversation, _ = services.start_conversation(site=site, visitor_id="visitor-sock-0009")

    def socket(path: str) -> WebsocketCommunicator:
        return WebsocketCommunicator(
            URLRouter(websocket_urlpatterns), path, headers=[(b"origin", ORIGIN.encode())]
        )

    async def scenario() -> None:
        with pytest.raises(ValueError, match="No route"):  # no route puts the token in the path any more
            await socket(f"/ws/chat/visitor/{conversation.token}/").connect()
        wrong = socket("/ws/chat/visitor/")
        assert (await wrong.connect())[0]
        await wrong.send_json_to({"type": "auth", "token": conversation.token[:-1] + "A"})
        assert (await wrong.receive_output(timeout=3))["type"] == "websocket.close"
        silent = socket("/ws/chat/visitor/")
        assert (await silent.connect())[0]
        await silent.send_json_to({"type": "ping"})  # anything but auth first: closed
        assert (await silent.receive_output(timeout=3))["type"] == "websocket.close"
        ok = socket("/ws/chat/visitor/")
        assert (await ok.connect())[0]
        await ok.send_json_to({"type": "auth", "token": conversation.token})
        assert await ok.receive_json_from(timeout=3) == {"type": "ready"}
        await ok.disconnect()

    run_in_own_loop(scenario)


def test_public_chat_view_offers_the_conversation_to_subclasses() -> None:
    # The privacy endpoints subclass PublicChatView and call conversation() (X-Chat-Token).
    assert callable(api.PublicChatView.conversation)
    assert api.TOKEN_HEADER == "X-Chat-Token"
    assert Conversation._meta.get_field("token").unique


@pytest.mark.django_db
def test_an_erased_persons_old_token_starts_a_chat_without_their_lead(client, site) -> None:
    from privacy.services import erase_person

    first = post(client, site, "conversations/", {}).json()
    post(client, site, "conversation/messages/", {"text": "Call me on 0123"}, first["token"])
    erased = Conversation.objects.get(site=site).lead
    erase_person(lead=erased, by=None)
    again = post(client, site, "conversations/", {}, first["token"]).json()
    assert again["resumed"] is False
    newest = Conversation.objects.filter(site=site).order_by("-id").first()
    assert newest.lead_id != erased.pk  # was: the new chat went on the erased lead
