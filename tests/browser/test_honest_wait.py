"""The visitor's honest wait, in headless Chromium on the demo website (DEBUG on and off).

Nobody on duty: the header says "We reply by email", "Talk to a person" reads "Leave a message",
asking gets no "connecting you" but a callback or an email, and choosing the email asks for the
address and then makes the promise. Someone on duty: "Online", and asking says how fast the team
usually replies, from the seeded reply times; after the site's callback_offer_after_s without a
reply (the page's clock is fast-forwarded, no real waiting) a callback or an email is offered.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chatbot.models import Conversation, Message, Sender
from demo.site import install_demo_site
from leadcrm.models import FollowUp
from leadcrm.services import set_on_duty
from tests.browser.test_chat_widget import ALWAYS_OPEN, asgi_server  # noqa: F401  (uvicorn on config.asgi)
from tests.factories import make_manager, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def demo_site(origin: str):
    site = install_demo_site(origins=[origin])
    site.business_hours = ALWAYS_OPEN
    site.save()
    make_manager("morgan", first_name="Morgan")  # owns promises when nobody else can
    return site


def seed_reply_times(site, seconds: list[int]) -> None:
    now = timezone.now()
    for i, wait in enumerate(seconds):
        handoff_at = now - timedelta(days=1, minutes=20 * i)
        conversation = Conversation.objects.create(
            site=site, visitor_id=f"v-past-{i:04d}", handoff_at=handoff_at, status="closed"
        )
        Message.objects.create(
            conversation=conversation,
            sender=Sender.AGENT,
            text="Hello!",
            created_at=handoff_at + timedelta(seconds=wait),
        )


def open_widget(browser, base: str, *, clock: bool = False):
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    if clock:
        page.clock.install()
    page.goto(f"{base}/chat/demo/site/")
    chat = page.locator("#leadcrm-chat")  # Playwright's CSS pierces the open shadow root
    chat.get_by_role("button", name="Chat with us").click()
    log = chat.get_by_role("log", name="Chat messages")
    log.locator(".m.bot").first.wait_for()
    return context, page, chat, log


def test_nobody_on_duty_no_live_offer_but_a_callback_or_an_email(browser, request) -> None:
    base = request.getfixturevalue("asgi_server")  # imported above: a parameter would shadow it
    site = demo_site(base)
    make_user("sam", first_name="Sam")  # a salesperson, but off duty
    context, page, chat, log = open_widget(browser, base)

    header = chat.locator(".h")
    header.get_by_text("We reply by email").wait_for()
    assert chat.get_by_role("button", name="Talk to a person").count() == 0
    chat.get_by_role("button", name="Leave a message / request a callback").first.click()

    log.get_by_text("Nobody from our team is free to chat right now").wait_for()
    assert "connecting you" not in log.inner_text()
    assert chat.get_by_role("button", name="Call me back").is_visible()
    chat.get_by_role("button", name="Email me instead").click()

    # No address yet: the contact form opens; once saved, the email follow-up is made.
    form = chat.get_by_role("form", name="Your contact details")
    form.get_by_label("Email", exact=True).fill("rosa.visitor@example.com")
    form.locator("input[name=contact_consent]").check()
    form.get_by_role("button", name="Save my details").click()
    log.get_by_text("will email you as soon as someone is free").wait_for()
    page.screenshot(path="docs/screenshots/chat_widget_nobody_on_duty.png")

    follow_up = FollowUp.objects.get()
    assert follow_up.note.startswith("Chat email follow-up")
    assert follow_up.lead.email == "rosa.visitor@example.com"
    assert follow_up.assigned_to is not None
    assert Conversation.objects.filter(site=site, handoff_at__isnull=False).count() == 1
    context.close()


def test_someone_on_duty_hears_the_usual_wait_then_is_offered_a_callback(browser, request) -> None:
    base = request.getfixturevalue("asgi_server")  # imported above: a parameter would shadow it
    site = demo_site(base)
    set_on_duty(user=make_user("sam", first_name="Sam"), on_duty=True)
    seed_reply_times(site, [95, 110, 120, 130, 150, 170])
    site.callback_offer_after_s = 90
    site.save()
    context, page, chat, log = open_widget(browser, base, clock=True)

    chat.locator(".h").get_by_text("Online").wait_for()
    chat.get_by_role("button", name="Talk to a person").first.click()
    log.get_by_text("Our team usually replies in about 2 minutes").wait_for()
    assert "Nobody from our team" not in log.inner_text()
    assert chat.get_by_role("button", name="Call me back").count() == 0
    page.screenshot(path="docs/screenshots/chat_widget_usual_wait.png")

    # Nobody has replied after the site's 90 s: a callback or an email instead of waiting unseen.
    page.clock.fast_forward(91_000)
    log.get_by_text("Sorry for the wait").wait_for()
    assert chat.get_by_role("button", name="Call me back").is_visible()
    assert chat.get_by_role("button", name="Email me instead").is_visible()
    context.close()
