from __future__ import annotations

import asyncio
import threading

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from chatbot import services
from chatbot.models import Conversation
from chatbot.routing import websocket_urlpatterns
from chatbot.sentiment import sentiment_score
from demo.site import DEMO_FAQ, install_demo_site
from tests.factories import make_lead, make_segment, make_user

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = "http://127.0.0.1:8000"
ALWAYS_OPEN = {d: [["00:00", "00:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture
def site():
    site = install_demo_site()
    site.business_hours = ALWAYS_OPEN
    site.save()
    return site


def test_demo_site_install_is_idempotent() -> None:
    first = install_demo_site()
    second = install_demo_site()
    assert first.pk == second.pk
    assert second.faq_entries.count() == len(DEMO_FAQ) >= 15
    assert {"http://127.0.0.1:8000", "http://localhost:8000"} <= set(second.allowed_origins)


def test_repeated_negative_sentiment_hands_off_to_a_person(site) -> None:
    conversation, _ = services.start_conversation(site=site, visitor_id="visitor-angry-01")
    services.post_visitor_message(conversation=conversation, text="This is useless, I am so angry")
    conversation.refresh_from_db()
    assert conversation.lead is not None  # the first message made the lead
    assert conversation.status == "bot"
    assert conversation.negative_count == 1
    services.post_visitor_message(conversation=conversation, text="Terrible, awful service")
    conversation.refresh_from_db()
    assert conversation.status == "waiting"
    scores = list(conversation.lead.interactions.filter(kind=13).values_list("sentiment", flat=True))
    assert len(scores) == 2
    assert all(s < -0.35 for s in scores)


def test_sentiment_range() -> None:
    assert sentiment_score("I love it, thank you!") > 0.5
    assert sentiment_score("This is horrible") < -0.4
    assert sentiment_score("") == 0.0


def test_segment_flow_greets_and_offers(site) -> None:
    from chatbot.models import SegmentFlow
    from leadcrm.models import Lead

    vip = make_segment("VIP")
    SegmentFlow.objects.create(
        site=site, segment=vip, greeting="Welcome back{name}, our VIP!", offer="10% off cakes today."
    )
    lead = Lead.objects.create(
        visitor_id="visitor-vip-0001", first_name="Ada", contact_consent=True, email="v@example.com"
    )
    vip.memberships.create(lead=lead)
    # The visitor id alone is anyone's guess: no lead, no segment, no name.
    anonymous, _ = services.start_conversation(site=site, visitor_id="visitor-vip-0001")
    assert anonymous.lead is None
    assert "Ada" not in anonymous.messages.first().text
    # The business's page signs the logged-in visitor's email: their segment's flow and name.
    conversation, _ = services.start_conversation(
        site=site,
        visitor_id="visitor-vip-0002",
        identity_email="v@example.com",
        identity_signature=site.identity_signature("v@example.com"),
    )
    texts = list(conversation.messages.values_list("text", flat=True))
    assert texts[:2] == ["Welcome back, Ada, our VIP!", "10% off cakes today."]


def run_in_own_loop(scenario) -> None:
    """Run an async scenario on a fresh loop in its own thread (a Playwright test may own this one)."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(scenario())
        except BaseException as exc:  # re-raised in the test thread
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the scenario did not finish"
    if failure:
        raise failure[0]


def _socket(path: str, origin: str = ORIGIN, user=None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), path, headers=[(b"origin", origin.encode())]
    )
    if user is not None:
        communicator.scope["user"] = user
    return communicator


def test_visitor_socket_needs_an_allowed_origin_and_receives_agent_replies(site) -> None:
    conversation, _ = services.start_conversation(site=site, visitor_id="visitor-sock-0001")
    seller = make_user("sam", first_name="Sam")

    async def scenario() -> None:
        evil = _socket("/ws/chat/visitor/", origin="https://evil.example")
        assert (await evil.connect())[0]
        await evil.send_json_to({"type": "auth", "token": conversation.token})
        assert (await evil.receive_output(timeout=3))["type"] == "websocket.close"
        ws = _socket("/ws/chat/visitor/")
        assert (await ws.connect())[0]
        await ws.send_json_to({"type": "auth", "token": conversation.token})
        assert (await ws.receive_json_from(timeout=3)) == {"type": "ready"}
        from channels.db import database_sync_to_async

        await database_sync_to_async(services.post_agent_message)(
            conversation=conversation, user=seller, text="<i>Hi</i>"
        )
        expected = {"Sam from our team has joined the chat.", "<i>Hi</i>"}
        texts: set[str] = set()
        while not expected <= texts:  # status events (the lead's creation, take-over) come too
            event = await ws.receive_json_from(timeout=3)
            texts |= {event["message"]["text"]} if event["type"] == "message" else set()
        await ws.disconnect()

    run_in_own_loop(scenario)


def test_agent_socket_follows_the_role_rule(site) -> None:
    conversation, _ = services.start_conversation(site=site, visitor_id="visitor-sock-0002")
    owner, rival = make_user("owner"), make_user("rival")
    lead = make_lead(owner=owner)
    Conversation.objects.filter(pk=conversation.pk).update(lead=lead, lead_created=True)
    conversation.refresh_from_db()

    async def scenario() -> None:
        hidden = _socket(f"/ws/chat/agent/{lead.pk}/", user=rival)
        assert not (await hidden.connect())[0]
        # The owner's session cookie, sent by a page on another website: refused.
        cross_site = _socket(f"/ws/chat/agent/{lead.pk}/", origin="https://evil.example", user=owner)
        assert not (await cross_site.connect())[0]
        ws = _socket(f"/ws/chat/agent/{lead.pk}/", user=owner)
        assert (await ws.connect())[0]
        from channels.db import database_sync_to_async

        await database_sync_to_async(services.post_visitor_message)(conversation=conversation, text="hello?")
        event = await ws.receive_json_from(timeout=3)
        assert event["type"] == "message"
        assert event["message"]["text"] == "hello?"
        await ws.disconnect()

    run_in_own_loop(scenario)
