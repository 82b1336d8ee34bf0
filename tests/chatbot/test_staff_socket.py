"""The staff pages' socket (`ws/staff/`), the waiting list it reloads, the alert opt-ins, typing."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.urls import reverse

from chatbot import realtime, selectors, services
from chatbot.models import Conversation, ConversationStatus
from chatbot.routing import websocket_urlpatterns
from demo.site import install_demo_site
from leadcrm import alerts
from leadcrm.models import StaffProfile
from tests.chatbot.test_services import ALWAYS_OPEN, ORIGIN, run_in_own_loop
from tests.factories import make_lead, make_manager, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def site():
    site = install_demo_site()
    site.business_hours = ALWAYS_OPEN
    site.save()
    return site


def _socket(path: str, user, origin: str = ORIGIN) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), path, headers=[(b"origin", origin.encode())]
    )
    communicator.scope["user"] = user
    return communicator


async def _frames_until(ws: WebsocketCommunicator, kind: str) -> list[dict]:
    """Frames received up to and including the first alert of `kind` (inbox frames come too)."""
    frames = []
    while not frames or frames[-1].get("kind") != kind:
        frames.append(await ws.receive_json_from(timeout=3))
    return frames


def _waiting_chat(site, *, owner=None, visitor: str = "visitor-waits-0001") -> Conversation:
    conversation, _ = services.start_conversation(site=site, visitor_id=visitor)
    services.post_visitor_message(conversation=conversation, text="Hello, do you deliver?")
    conversation.refresh_from_db()
    if owner is not None:
        conversation.lead.owner = owner
        conversation.lead.save(update_fields=["owner"])
    services.request_handoff(conversation=conversation)
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.WAITING
    return conversation


# --- Who may open it -----------------------------------------------------------------------------


def test_anonymous_users_without_a_role_and_other_websites_are_refused() -> None:
    nobody = make_user("norole", role=None)
    seller = make_user("sara")

    async def scenario() -> None:
        assert await _socket("/ws/staff/", AnonymousUser()).connect() == (False, 4403)
        assert await _socket("/ws/staff/", nobody).connect() == (False, 4403)
        # The salesperson's session cookie, sent by a page on another website: refused.
        connected, _ = await _socket("/ws/staff/", seller, origin="https://evil.example").connect()
        assert not connected

    run_in_own_loop(scenario)


def test_a_salesperson_gets_their_own_and_everyones_alerts_a_manager_also_the_managers() -> None:
    seller, other, manager = make_user("sara"), make_user("omar"), make_manager("maya")

    async def scenario() -> None:
        sara = _socket("/ws/staff/", seller)
        maya = _socket("/ws/staff/", manager)
        assert (await sara.connect())[0]
        assert (await maya.connect())[0]
        layer = get_channel_layer()
        event = {"type": "staff.alert", "kind": "chat.waiting", "conversation": 7}
        await layer.group_send(alerts.user_group(seller.pk), event | {"n": 1})
        assert await sara.receive_json_from(timeout=3) == {
            "type": "alert",
            "kind": "chat.waiting",
            "conversation": 7,
            "n": 1,
        }
        assert await maya.receive_nothing(timeout=0.2)
        await layer.group_send(alerts.user_group(other.pk), event | {"n": 2})  # someone else's
        await layer.group_send(alerts.MANAGERS_GROUP, event | {"n": 3})
        assert (await maya.receive_json_from(timeout=3))["n"] == 3
        assert await sara.receive_nothing(timeout=0.2)
        await layer.group_send(alerts.ALL_GROUP, event | {"n": 4})
        assert (await sara.receive_json_from(timeout=3))["n"] == 4
        assert (await maya.receive_json_from(timeout=3))["n"] == 4
        # Push-only: what a page sends is ignored (text or bytes), the socket stays open.
        await sara.send_to(text_data='{"type": "staff.alert", "kind": "chat.waiting"}')
        await sara.send_to(bytes_data=b"\x00\x01")
        assert await sara.receive_nothing(timeout=0.2)
        await layer.group_send(alerts.ALL_GROUP, event | {"n": 5})
        assert (await sara.receive_json_from(timeout=3))["n"] == 5
        await sara.disconnect()
        await maya.disconnect()

    run_in_own_loop(scenario)


def test_a_hand_off_alerts_every_staff_page_without_the_visitors_details_and_taking_it_too(site) -> None:
    seller, taker = make_user("sara"), make_user("tom", first_name="Tom")

    async def scenario() -> None:
        sara = _socket("/ws/staff/", seller)
        assert (await sara.connect())[0]
        conversation = await database_sync_to_async(_waiting_chat)(site)
        frames = await _frames_until(sara, "chat.waiting")
        alert = frames[-1]
        assert alert["type"] == "alert"
        assert alert["conversation"] == conversation.pk
        assert alert["lead"] == conversation.lead_id
        assert alert["routed_to"] is None
        assert set(alert) == {
            "type",
            "kind",
            "conversation",
            "lead",
            "routed_to",
            "since",
        }  # no name, no text
        if {"type": "inbox", "event": "handoff"} not in frames:  # the two sends may cross
            frames.append(await sara.receive_json_from(timeout=3))
        assert {"type": "inbox", "event": "handoff"} in frames
        await database_sync_to_async(services.take_over)(conversation=conversation, user=taker)
        frames = await _frames_until(sara, "chat.taken")
        assert frames[-1]["conversation"] == conversation.pk
        await sara.disconnect()

    run_in_own_loop(scenario)


def test_an_alert_routed_to_one_person_reaches_only_their_pages(site) -> None:
    seller, other = make_user("sara"), make_user("omar")
    conversation = _waiting_chat(site)

    async def scenario() -> None:
        sara, omar = _socket("/ws/staff/", seller), _socket("/ws/staff/", other)
        assert (await sara.connect())[0]
        assert (await omar.connect())[0]
        await database_sync_to_async(realtime.alert_waiting)(conversation, routed_to=seller.pk)
        alert = await sara.receive_json_from(timeout=3)
        assert alert["kind"] == "chat.waiting"
        assert alert["routed_to"] == seller.pk
        assert await omar.receive_nothing(timeout=0.3)
        await sara.disconnect()
        await omar.disconnect()

    run_in_own_loop(scenario)


# --- The waiting list (what a page reloads on every alert and reconnect) -------------------------


def test_the_waiting_list_shows_only_chats_of_leads_the_user_may_see(site, client) -> None:
    sara, omar, maya = make_user("sara"), make_user("omar"), make_manager("maya")
    unassigned = _waiting_chat(site, visitor="visitor-waits-0001")
    saras = _waiting_chat(site, owner=sara, visitor="visitor-waits-0002")
    omars = _waiting_chat(site, owner=omar, visitor="visitor-waits-0003")
    url = reverse("chatbot:waiting")

    client.force_login(sara)
    data = client.get(url).json()
    assert data["count"] == 2
    assert {w["conversation"] for w in data["waiting"]} == {unassigned.pk, saras.pk}
    assert omars.lead.display_name not in str(data)
    row = next(w for w in data["waiting"] if w["conversation"] == saras.pk)
    assert row["name"] == saras.lead.display_name
    assert row["url"] == reverse("leadcrm:lead", args=[saras.lead_id]) + "#live-h"

    client.force_login(maya)
    assert {w["conversation"] for w in client.get(url).json()["waiting"]} == {
        unassigned.pk,
        saras.pk,
        omars.pk,
    }

    client.force_login(make_user("norole", role=None))
    assert client.get(url).status_code == 403
    client.logout()
    assert client.get(url).status_code == 302  # to the login page


def test_the_waiting_list_is_one_query(site, django_assert_num_queries) -> None:
    maya = make_manager("maya")
    for n in range(3):
        _waiting_chat(site, visitor=f"visitor-waits-000{n}")
    maya = type(maya).objects.get(pk=maya.pk)
    from leadcrm.permissions import is_manager

    is_manager(maya)  # the role is cached on the user, like in a request
    with django_assert_num_queries(1):
        rows = selectors.waiting_conversations(user=maya)
        names = [(c.lead.display_name, c.site.name) for c in rows]
    assert len(names) == 3


def test_a_taken_chat_leaves_the_waiting_list(site, client) -> None:
    sara = make_user("sara")
    conversation = _waiting_chat(site)
    services.take_over(conversation=conversation, user=sara)
    client.force_login(sara)
    assert client.get(reverse("chatbot:waiting")).json()["count"] == 0


# --- Alert opt-ins -------------------------------------------------------------------------------


def test_alert_opt_ins_are_saved_with_and_without_javascript(client) -> None:
    sara = make_user("sara")
    client.force_login(sara)
    url = reverse("chatbot:alert_preferences")
    response = client.post(
        url, {"alert_sound": ["0", "1"], "alert_desktop": "0"}, HTTP_ACCEPT="application/json"
    )
    assert response.json() == {"sound": True, "desktop": False}
    profile = StaffProfile.objects.get(user=sara)
    assert profile.alert_sound
    assert not profile.alert_desktop
    # Without JavaScript: the form posts and goes back where it was (only to this site).
    response = client.post(url, {"alert_sound": "0", "alert_desktop": ["0", "1"], "next": "/chat/"})
    assert response.status_code == 302
    assert response["Location"] == "/chat/"
    response = client.post(url, {"alert_sound": "0", "next": "https://evil.example/"})
    assert response["Location"] == reverse("leadcrm:queue")
    profile.refresh_from_db()
    assert not profile.alert_sound
    assert profile.alert_desktop
    bad = client.post(url, {"alert_sound": "loud"})
    assert bad.status_code == 400
    assert "on or off" in bad.json()["error"]
    assert client.post(url, {}).status_code == 400
    client.force_login(make_user("norole", role=None))
    assert client.post(url, {"alert_sound": "1"}).status_code == 403


def test_staff_pages_load_the_alerts_script_and_badge(client) -> None:
    client.force_login(make_user("sara"))
    html = client.get(reverse("leadcrm:queue")).content.decode()
    assert "leadcrm/staff_alerts.js" in html
    assert "data-waiting-count" in html
    assert "data-waiting-strip" in html
    assert 'data-ws="/ws/staff/"' in html


# --- Typing --------------------------------------------------------------------------------------


def test_visitor_typing_reaches_the_agent_panel_throttled_and_nothing_else_passes(site) -> None:
    seller = make_user("sara", first_name="Sara")
    conversation, _ = services.start_conversation(site=site, visitor_id="visitor-typing-01")
    services.post_visitor_message(conversation=conversation, text="Hi there")
    conversation.refresh_from_db()
    lead = conversation.lead
    lead.owner = seller
    lead.save(update_fields=["owner"])
    messages_before = conversation.messages.count()

    async def scenario() -> None:
        visitor = _socket("/ws/chat/visitor/", AnonymousUser())
        assert (await visitor.connect())[0]
        await visitor.send_json_to({"type": "auth", "token": conversation.token})
        assert (await visitor.receive_json_from(timeout=3))["type"] == "ready"
        agent = _socket(f"/ws/chat/agent/{lead.pk}/", seller)
        assert (await agent.connect())[0]
        # Before typing: a visitor cannot send anything else through the socket.
        await visitor.send_json_to({"type": "message", "text": "injected"})
        await visitor.send_json_to({"type": "chat.message", "message": {"text": "injected"}})
        await visitor.send_json_to({"type": "typing", "text": "secret draft", "from": "agent"})
        frame = await agent.receive_json_from(timeout=3)
        assert frame == {"type": "typing", "conversation": conversation.pk, "from": "visitor"}
        for _ in range(5):  # within 2 s: throttled
            await visitor.send_json_to({"type": "typing"})
        assert await agent.receive_nothing(timeout=0.5)
        await asyncio.sleep(2.1)
        await visitor.send_json_to({"type": "typing"})
        assert (await agent.receive_json_from(timeout=3))["type"] == "typing"
        # The agent's typing reaches the widget, with the agent's first name.
        await agent.send_json_to({"type": "typing", "conversation": conversation.pk})
        assert await visitor.receive_json_from(timeout=3) == {
            "type": "typing",
            "from": "agent",
            "agent": "Sara",
        }
        await visitor.disconnect()
        await agent.disconnect()

    run_in_own_loop(scenario)
    assert conversation.messages.count() == messages_before  # nothing was stored from the socket


def test_agent_typing_only_for_a_chat_of_the_panels_lead(site) -> None:
    seller = make_user("sara")
    own = make_lead(owner=seller)
    conversation, _ = services.start_conversation(site=site, visitor_id="visitor-typing-02")
    services.post_visitor_message(conversation=conversation, text="Hi there")
    conversation.refresh_from_db()  # another lead's chat (unassigned)

    async def scenario() -> None:
        visitor = _socket("/ws/chat/visitor/", AnonymousUser())
        assert (await visitor.connect())[0]
        await visitor.send_json_to({"type": "auth", "token": conversation.token})
        assert (await visitor.receive_json_from(timeout=3))["type"] == "ready"
        agent = _socket(f"/ws/chat/agent/{own.pk}/", seller)
        assert (await agent.connect())[0]
        for bad in (conversation.pk, str(conversation.pk), True, None):
            await agent.send_json_to({"type": "typing", "conversation": bad})
        await agent.send_to(text_data="not json")
        assert await visitor.receive_nothing(timeout=0.5)
        await visitor.disconnect()
        await agent.disconnect()

    run_in_own_loop(scenario)
