"""A bot that knows what it doesn't know, in a real browser: the visitor's out-of-scope question is
declined, a manager turns it into an FAQ entry from the unanswered-questions list, and the same
question then gets that answer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from demo.site import install_demo_site
from tests.browser.conftest import login
from tests.browser.test_chat_widget import ALWAYS_OPEN, asgi_server  # noqa: F401  (the ASGI server fixture)
from tests.factories import make_manager

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CRYPTO = "Can I pay with crypto for a rocket cake?"
ANSWER = "Not yet: we take cash, cards, Apple Pay and Google Pay. No rocket cakes either, sorry!"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def test_out_of_scope_question_is_declined_then_added_to_the_faq_and_answered(
    browser,
    page,
    asgi_server,  # noqa: F811  (the imported fixture)
    debug_mode,
) -> None:
    site = install_demo_site(origins=[asgi_server])  # its commit calibrates the threshold
    site.business_hours = ALWAYS_OPEN
    site.save()
    make_manager("mia", first_name="Mia")

    visitor = browser.new_context(viewport={"width": 420, "height": 800})
    visitor.set_default_timeout(10_000)
    vpage = visitor.new_page()
    vpage.goto(f"{asgi_server}/chat/demo/site/")
    chat = vpage.locator("#leadcrm-chat")
    chat.get_by_role("button", name="Chat with us").click()
    log = chat.get_by_role("log", name="Chat messages")
    log.locator(".m.bot").first.wait_for()

    chat.get_by_label("Your message").fill(CRYPTO)
    chat.get_by_role("button", name="Send").click()
    log.get_by_text("I'm not sure about that one").wait_for()
    assert log.get_by_text("Custom cakes start at €35").count() == 0  # the old bot's confident guess
    chat.get_by_role("button", name="Leave your question").wait_for()
    # The hand-off quick reply; it reads "Leave a message…" when nobody is on duty to chat live.
    assert chat.get_by_role("button", name=re.compile("Talk to a person|Leave a message")).count() >= 1

    login(page, asgi_server, "mia")
    page.goto(f"{asgi_server}/chat/reports/")
    page.get_by_role("link", name="unanswered questions").click()
    card = page.locator("article.unanswered", has_text=CRYPTO)
    card.wait_for()
    if not debug_mode:
        page.screenshot(path=str(SCREENSHOTS / "unanswered.png"), full_page=True)
    card.get_by_role("link", name="New FAQ entry…").click()
    form = page.locator("article.unanswered", has_text="New FAQ entry from")
    form.get_by_label("Question").wait_for()
    assert form.get_by_label("Question").input_value() == CRYPTO  # pre-filled from the visitor's words
    form.get_by_label("Answer the bot gives").fill(ANSWER)
    form.get_by_role("button", name="Save FAQ entry").click()
    page.get_by_role("status").filter(has_text="saved").wait_for()

    chat.get_by_label("Your message").fill(CRYPTO)
    chat.get_by_role("button", name="Send").click()
    log.get_by_text(ANSWER).wait_for()
    visitor.close()
