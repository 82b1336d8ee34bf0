"""The email code flow in the widget, in headless Chromium on the demo website (DEBUG on and off):
leave a known customer's email → "Verify it's me: email me a code" → a wrong code is refused in
the widget → the right one links the chat to the known lead. Keyboard from the offer on; no
token, address or code in any URL; no CSP violation. (tests/chatbot/test_email_verification.py
has the rules; this is the widget.)"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

import pytest
from django.core import mail
from django.core.cache import cache

from chatbot.models import Conversation
from demo.site import install_demo_site
from leadcrm.models import Lead
from tests.browser.test_chat_widget import ALWAYS_OPEN, asgi_server  # noqa: F401  (uvicorn on config.asgi)
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KIM = "kim@customer.example"


def wait_for_code(to: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in mail.outbox:
            if message.to == [to]:
                return re.search(r"\b(\d{6})\b", message.body).group(1)
        time.sleep(0.05)
    raise AssertionError(f"no code was mailed within {timeout} s")


@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG on", "DEBUG off"])
def test_a_returning_customer_verifies_their_email_in_the_widget(
    browser: Any, request: pytest.FixtureRequest, settings: Any, mailoutbox: list, debug: bool
) -> None:
    base = request.getfixturevalue("asgi_server")  # imported above: a parameter would shadow the import
    settings.DEBUG = debug
    cache.clear()  # the code limits (per IP, per address) of earlier tests and runs start empty
    site = install_demo_site(origins=[base])
    site.business_hours = ALWAYS_OPEN
    site.save()
    known = Lead.objects.create(email=KIM, first_name="Kim", source="web_form", owner=make_user("sam"))

    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{base}/chat/demo/site/")
    chat = page.locator("#leadcrm-chat")
    chat.get_by_role("button", name="Chat with us").click()
    log = chat.get_by_role("log", name="Chat messages")
    log.locator(".m.bot").first.wait_for()

    # Typing a known customer's email proves nothing yet; the widget offers a code.
    chat.get_by_role("button", name="Leave my contact details").click()
    details = chat.get_by_role("form", name="Your contact details")
    details.get_by_label("Email", exact=True).fill(KIM)
    details.locator("input[name=contact_consent]").check()
    details.get_by_role("button", name="Save my details").click()
    offer = chat.get_by_role("button", name="Verify it's me: email me a code")
    offer.wait_for()
    assert offer.evaluate("b => b.getRootNode().activeElement === b")  # focus moved to the offer
    page.keyboard.press("Enter")
    verify = chat.get_by_role("form", name="Verify your email")
    verify.get_by_role("status").get_by_text("If this address is yours, a code is on its way").wait_for()
    assert verify.get_by_label("Your email").input_value() == KIM
    code = wait_for_code(KIM)

    # A wrong code is refused in the widget, announced to screen readers; the right one works.
    code_box = verify.get_by_label("6-digit code from the email")
    assert code_box.evaluate("i => i.getRootNode().activeElement === i")
    page.keyboard.type(f"{(int(code) + 1) % 1_000_000:06d}")
    page.keyboard.press("Enter")
    verify.get_by_role("alert").get_by_text("That code is not right: 4 tries left.").wait_for()
    page.screenshot(path=f"/tmp/chat_email_code_form_{'debug' if debug else 'prod'}.png")
    code_box.fill(code)
    page.keyboard.press("Enter")
    log.get_by_text("Thanks! Your email address is confirmed.").wait_for()
    assert verify.is_hidden()
    assert chat.get_by_role("button", name="Verify my email").is_hidden()
    assert chat.get_by_role("button", name="What do you know about me?").is_visible()

    conversation = Conversation.objects.get(lead=known)
    assert conversation.identity_verified
    assert conversation.verified_by == "email_code"
    secrets = (KIM, quote(KIM, safe=""), code, conversation.token)
    assert not [u for u in urls if any(s in u for s in secrets)]
    page.screenshot(path=f"/tmp/chat_email_code_{'debug' if debug else 'prod'}.png")
    assert violations == []
    context.close()
