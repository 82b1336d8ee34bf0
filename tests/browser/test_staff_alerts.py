"""A visitor asks for a person → salesperson B's other open pages show it at once (the staff socket)."""

from __future__ import annotations

import re
import time

import pytest
from django.urls import reverse
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from chatbot.models import Conversation
from demo.site import install_demo_site
from leadcrm.models import StaffProfile
from tests.browser.conftest import login
from tests.browser.test_chat_widget import ALWAYS_OPEN, asgi_server  # noqa: F401  (the fixture)
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_waiting_visitor_shows_on_another_salespersons_pages_and_leaves_when_taken(
    browser,
    asgi_server,  # noqa: F811
) -> None:
    site = install_demo_site(origins=[asgi_server])
    site.business_hours = ALWAYS_OPEN
    site.save()
    bea = make_user("bea", first_name="Bea")
    StaffProfile.objects.create(user=bea, on_duty=True)  # "Talk to a person" is live only then

    # Salesperson B: the queue in one tab, the live chats in another.
    staff = browser.new_context(viewport={"width": 1280, "height": 860})
    staff.set_default_timeout(15_000)
    queue = staff.new_page()
    login(queue, asgi_server, "bea")
    queue.goto(f"{asgi_server}{reverse('leadcrm:queue')}")
    inbox = staff.new_page()
    inbox.goto(f"{asgi_server}/chat/")
    for tab in (queue, inbox):
        tab.locator('#staff-alerts[data-connected="1"]').wait_for(state="attached")
    assert not queue.title().startswith("(")
    strip = queue.locator("[data-waiting-strip]")
    assert strip.is_hidden()

    # A visitor on the business's website asks for a person.
    visitor = browser.new_context(viewport={"width": 1100, "height": 800})
    visitor.set_default_timeout(15_000)
    vpage = visitor.new_page()
    vpage.goto(f"{asgi_server}/chat/demo/site/")
    chat = vpage.locator("#leadcrm-chat")
    chat.get_by_role("button", name="Chat with us").click()
    chat.get_by_role("log", name="Chat messages").locator(".m.bot").first.wait_for()
    started = time.perf_counter()
    chat.get_by_role("button", name="Talk to a person").first.click()

    # B's queue page: the tab title count, the nav badge and the waiting strip with "Join".
    # (Waited for with a locator: wait_for_function evals, which the strict CSP refuses.)
    queue.locator('html[data-waiting="1"]').wait_for(state="attached", timeout=30_000)
    observed_ms = (time.perf_counter() - started) * 1000
    assert queue.title().startswith("(1) ")
    print(f"hand-off click → tab title '(1) …' on B's queue page: {observed_ms:.0f} ms")
    badge = queue.locator("[data-waiting-count]")
    assert badge.is_visible()
    assert badge.inner_text() == "1"
    strip.wait_for(state="visible")
    conversation = Conversation.objects.select_related("lead").get(site=site, status="waiting")
    join = strip.get_by_role("link", name=re.compile("Join the chat with"))
    assert join.get_attribute("href") == reverse("leadcrm:lead", args=[conversation.lead_id]) + "#live-h"
    assert conversation.lead.display_name in strip.inner_text()
    assert "waiting" in strip.inner_text()
    # The other tab too, and its live chats list refreshed by the push (no waiting for its poll).
    inbox.locator('html[data-waiting="1"]').wait_for(state="attached", timeout=30_000)
    assert inbox.title().startswith("(1) ")
    inbox.locator("#inbox-list").get_by_role("link", name="Open chat").wait_for()
    queue.screenshot(path="docs/screenshots/staff_alerts_waiting_strip.png")

    # B takes the chat from the live chats tab: every page drops it.
    inbox.locator("#inbox-list").get_by_role("link", name="Open chat").first.click()
    inbox.locator("[data-chat-panel]").get_by_role("button", name="Take over").click()
    inbox.locator("[data-chat-panel]").get_by_text("Bea from our team has joined").wait_for()
    queue.locator('html[data-waiting="0"]').wait_for(state="attached", timeout=30_000)
    assert not queue.title().startswith("(")
    strip.wait_for(state="hidden")
    assert badge.is_hidden()

    # Typing, both ways, over the existing sockets (a frame sent before a socket is up is simply
    # lost, so each side types again until the other shows it).
    panel_typing = inbox.locator("[data-chat-panel] [data-role=typing]")
    for attempt in range(10):
        chat.get_by_label("Your message").fill(f"Do you deliver{'?' * attempt}")
        try:
            panel_typing.wait_for(state="visible", timeout=3_000)
            break
        except PlaywrightTimeout:
            continue
    assert panel_typing.inner_text() == "The visitor is typing…"
    widget_typing = chat.locator(".tp")
    for attempt in range(10):
        inbox.get_by_label("Reply to the visitor").fill(f"Yes we do{'!' * attempt}")
        try:
            widget_typing.wait_for(state="visible", timeout=3_000)
            break
        except PlaywrightTimeout:
            continue
    assert widget_typing.inner_text() == "Bea is typing…"
    visitor.close()
    staff.close()
