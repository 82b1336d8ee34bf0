"""Routing and promises in a real browser (docs/chat.md#routing, docs/dashboard.md#follow-ups):
a handed-off chat reaches the salesperson on duty, is offered to everyone and escalated to the
manager while unanswered; a callback the bot promises out of hours has an owner and, once overdue,
reaches the manager's list and their open page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from chatbot import escalation
from chatbot import services as chat
from chatbot.models import Conversation
from demo.site import install_demo_site
from leadcrm import routing
from leadcrm import services as crm
from leadcrm.models import FollowUp
from tests.browser.conftest import login
from tests.browser.test_chat_widget import asgi_server  # noqa: F401  (the ASGI server fixture)
from tests.factories import make_manager, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ALWAYS_OPEN = {day: [["00:00", "00:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture(autouse=True)
def fresh_channel_layer() -> Iterator[None]:
    """Each test's server gets its own channel layer: a Redis layer remembers the event loop of the
    previous server's receivers and would refuse this one's."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def staff_page(browser, base_url: str, username: str):
    """A logged-in page that records the staff alerts its socket receives."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.alerts = []  # type: ignore[attr-defined]

    def on_socket(ws) -> None:
        def on_frame(payload) -> None:
            try:
                frame = json.loads(payload)
            except (TypeError, ValueError):
                return
            if isinstance(frame, dict) and frame.get("kind"):
                page.alerts.append(frame)  # type: ignore[attr-defined]

        ws.on("framereceived", on_frame)

    page.on("websocket", on_socket)
    login(page, base_url, username)
    return page


def wait_for_alert(page, kind: str) -> dict:
    for _ in range(100):
        found = [a for a in page.alerts if a.get("kind") == kind]
        if found:
            return found[0]
        page.wait_for_timeout(100)
    raise AssertionError(f"no {kind} alert reached the page; got {page.alerts}")


def test_a_chat_goes_to_the_salesperson_on_duty_then_everyone_then_the_manager(
    browser,
    asgi_server,  # noqa: F811  (the imported fixture)
    settings,
) -> None:
    settings.CHAT_OFFER_ALL_AFTER_S, settings.CHAT_ESCALATE_AFTER_S = 1, 2
    site = install_demo_site(origins=[asgi_server])
    site.business_hours = ALWAYS_OPEN
    site.save()
    sam = make_user("sam", first_name="Sam")
    make_user("tom", first_name="Tom")  # off duty
    make_manager("maria", first_name="Maria")

    # Sam goes on duty with the toggle in the nav.
    sam_page = staff_page(browser, asgi_server, "sam")
    sam_page.goto(f"{asgi_server}/chat/")
    sam_page.get_by_role("button", name="Off duty").click()
    sam_page.get_by_role("button", name="On duty").wait_for()
    assert routing.is_on_duty(sam)

    tom_page = staff_page(browser, asgi_server, "tom")
    maria_page = staff_page(browser, asgi_server, "maria")
    for p in (tom_page, maria_page):
        p.goto(f"{asgi_server}/chat/")
        p.wait_for_function("() => window.leadcrmStaffAlerts && window.leadcrmStaffAlerts.connected")
    sam_page.wait_for_function("() => window.leadcrmStaffAlerts && window.leadcrmStaffAlerts.connected")

    # A visitor asks for a person.
    visitor = browser.new_context(viewport={"width": 1100, "height": 800})
    visitor.set_default_timeout(10_000)
    vpage = visitor.new_page()
    vpage.goto(f"{asgi_server}/chat/demo/site/")
    widget = vpage.locator("#leadcrm-chat")
    widget.get_by_role("button", name="Chat with us").click()
    log = widget.get_by_role("log", name="Chat messages")
    widget.get_by_label("Your message").fill("Can I talk to a human please?")
    widget.get_by_role("button", name="Send").click()
    log.get_by_text("connecting you with a person").wait_for()

    conversation = Conversation.objects.get(status="waiting")
    assert conversation.routed_to == sam
    assert wait_for_alert(sam_page, "chat.waiting")["routed_to"] == sam.pk
    sam_page.reload()
    sam_page.locator("#inbox-list").get_by_text("Routed to you").wait_for()
    sam_page.screenshot(path="docs/screenshots/live_chats_routed.png")

    # Nobody answers: offered to everyone on duty (the sweep, run now instead of waiting for beat).
    assert escalation.advance_waiting_chats(now=conversation.routed_at + timedelta(seconds=1.5)) == (1, 0)
    assert wait_for_alert(tom_page, "chat.offered")["conversation"] == conversation.pk
    # Still nobody: the managers are alerted, and their inbox says so.
    assert escalation.advance_waiting_chats(now=conversation.routed_at + timedelta(seconds=2.5)) == (0, 1)
    escalated = wait_for_alert(maria_page, "chat.escalated")
    assert escalated["conversation"] == conversation.pk
    assert not [a for a in tom_page.alerts if a["kind"] == "chat.escalated"]  # not to everyone
    maria_page.reload()
    row = maria_page.locator("#inbox-list tr", has_text="Routed to Sam")
    row.get_by_text("managers alerted").wait_for()
    for p in (sam_page, tom_page, maria_page):
        p.context.close()
    visitor.close()


def test_a_callback_promised_out_of_hours_is_owned_and_escalated_when_overdue(
    browser,
    asgi_server,  # noqa: F811  (the imported fixture)
    settings,
) -> None:
    settings.FOLLOW_UP_ESCALATE_AFTER_MIN = 30
    site = install_demo_site(origins=[asgi_server])
    site.business_hours = {"mon": [["09:00", "10:00"]]}  # closed nearly all week
    site.handoff_owner = None
    site.save()
    maria = make_manager("maria", first_name="Maria")
    make_user("sam", first_name="Sam")  # off duty

    # The visitor left their details out of hours; the bot promised a callback 40 minutes ago
    # (the service's `now`), due 10 minutes ago.
    real_now = timezone.now()
    conversation, _ = chat.start_conversation(site=site, visitor_id="visitor-callback-01")
    chat.identify_visitor(
        conversation=conversation, name="Grace Hopper", email="grace@example.com", contact_consent=True
    )
    follow_up = chat.schedule_callback(
        conversation=conversation,
        due_at=real_now - timedelta(minutes=10),
        now=real_now - timedelta(minutes=40),
    )
    # The bug was an unowned follow-up nobody ever saw: now the routing rule gives it an owner.
    assert follow_up.assigned_to == maria
    promise = conversation.messages.order_by("-id").first().text
    assert promise.startswith("Done: Maria from our team will call you back")

    page = staff_page(browser, asgi_server, "maria")
    page.goto(f"{asgi_server}/crm/follow-ups/")
    page.wait_for_function("() => window.leadcrmStaffAlerts && window.leadcrmStaffAlerts.connected")
    assert crm.escalate_overdue_follow_ups() == (1, 0)  # the beat task, run now
    alert = wait_for_alert(page, "followup.overdue")
    assert alert["follow_ups"] == [follow_up.pk]
    assert alert["escalated"] is False

    # Past the grace period the managers are alerted, once.
    assert crm.escalate_overdue_follow_ups(now=real_now + timedelta(minutes=25)) == (0, 1)
    assert crm.escalate_overdue_follow_ups(now=real_now + timedelta(minutes=26)) == (0, 0)
    escalated: list[dict] = []
    for _ in range(100):
        escalated = [a for a in page.alerts if a.get("kind") == "followup.overdue" and a.get("escalated")]
        if escalated:
            break
        page.wait_for_timeout(100)
    assert escalated
    assert escalated[0]["follow_ups"] == [follow_up.pk]

    # The manager's list of unowned or overdue follow-ups has it; they give it to Sam in place.
    page.goto(f"{asgi_server}/crm/follow-ups/")
    page.get_by_role("link", name="The team's unowned or overdue follow-ups").click()
    row = page.locator(f"#attention-{follow_up.pk}")
    assert "Grace" in row.inner_text()
    assert "managers alerted" in row.inner_text()
    page.screenshot(path="docs/screenshots/follow_ups_attention.png", full_page=True)
    row.get_by_label("Give the follow-up for Grace Hopper to").select_option(label="Sam")
    row.get_by_role("button", name="Reassign").click()
    page.locator(f"#attention-{follow_up.pk}").get_by_text("Given to Sam.").wait_for()
    assert FollowUp.objects.get(pk=follow_up.pk).assigned_to.username == "sam"
    page.context.close()
