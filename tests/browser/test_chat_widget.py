"""The chat end to end on a real ASGI server (HTTP + websockets): visitor widget ↔ agent panel."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections

from chatbot import api, faq
from demo.site import install_demo_site
from leadcrm.models import Lead
from leadcrm.services import set_on_duty
from tests.browser.conftest import login
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ALWAYS_OPEN = {day: [["00:00", "00:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture
def asgi_server(transactional_db: None, settings) -> Iterator[str]:
    """Uvicorn serving config.asgi in a thread on a free loopback port (pytest-django's is WSGI-only)."""
    import uvicorn
    from channels.layers import channel_layers

    from config.asgi import application

    # Each server gets its own channel layer: a Redis layer remembers the event loop of the previous
    # server's receivers and would refuse this one's ("Two event loops…"); cleared again after.
    channel_layers.backends.clear()

    # Connections opened by the server's worker threads must close after each request, or the
    # test database could not be flushed/dropped at the end.
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Per-process caches of sites and fitted FAQs must not leak between tests' databases.
    api._sites.clear()
    faq._cache.clear()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            application, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="websockets"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    connections.close_all()
    channel_layers.backends.clear()


def test_visitor_asks_faq_leaves_details_gets_a_person_and_sees_the_reply(browser, asgi_server) -> None:
    site = install_demo_site(origins=[asgi_server])
    site.business_hours = ALWAYS_OPEN
    site.save()
    # Sam is on duty: "Talk to a person" is live (with nobody on duty a callback is offered instead).
    set_on_duty(user=make_user("sam", first_name="Sam"), on_duty=True)

    visitor = browser.new_context(viewport={"width": 1100, "height": 800})
    visitor.set_default_timeout(10_000)
    vpage = visitor.new_page()
    vpage.goto(f"{asgi_server}/chat/demo/site/")
    chat = vpage.locator("#leadcrm-chat")  # Playwright's CSS pierces the open shadow root
    chat.get_by_role("button", name="Chat with us").click()
    log = chat.get_by_role("log", name="Chat messages")
    log.locator(".m.bot").first.wait_for()

    # An FAQ question gets the site's own answer.
    chat.get_by_label("Your message").fill("Do you deliver to my home?")
    chat.get_by_role("button", name="Send").click()
    log.get_by_text("We deliver within 10 km").wait_for()

    # Name and email, with the consent line and its checkbox.
    chat.get_by_role("button", name="Leave my contact details").click()
    form = chat.get_by_role("form", name="Your contact details")
    assert "stores these details" in form.inner_text()
    form.get_by_label("Name", exact=True).fill("Ada Lovelace")
    form.get_by_label("Email", exact=True).fill("ada@example.com")
    form.locator("input[name=contact_consent]").check()
    form.get_by_role("button", name="Save my details").click()
    log.get_by_text("Thanks, Ada!").wait_for()

    # Identified: "What do you know about me?" downloads the privacy export (token in a header).
    with vpage.expect_download() as download:
        chat.get_by_role("button", name="What do you know about me?").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert "ada@example.com" in json.dumps(exported)
    assert chat.get_by_role("button", name="Ask us to erase my data").is_visible()

    # Ask for a human in words.
    chat.get_by_label("Your message").fill("Can I talk to a human please?")
    chat.get_by_role("button", name="Send").click()
    log.get_by_text("connecting you with a person").wait_for()

    lead = Lead.objects.get(email="ada@example.com")
    assert lead.contact_consent
    assert lead.contact_consent_at is not None
    assert lead.first_name == "Ada"
    assert lead.source == "chat"

    # The salesperson sees the chat live, takes over and replies.
    agent = browser.new_context(viewport={"width": 1280, "height": 860})
    agent.set_default_timeout(10_000)
    apage = agent.new_page()
    login(apage, asgi_server, "sam")
    apage.goto(f"{asgi_server}/chat/")
    apage.get_by_role("link", name="Open chat").first.click()
    panel = apage.locator("[data-chat-panel]")
    panel.get_by_text("Do you deliver to my home?").wait_for()
    assert "live now" in panel.inner_text()
    panel.get_by_role("button", name="Take over").click()
    apage.locator("[data-chat-panel]").get_by_text("Sam from our team has joined").wait_for()

    # A new visitor message streams into the panel over the websocket.
    chat.get_by_label("Your message").fill("<b>Are you there?</b>")
    chat.get_by_role("button", name="Send").click()
    apage.locator("[data-chat-panel]").get_by_text("<b>Are you there?</b>").wait_for()

    apage.get_by_label("Reply to the visitor").fill("Hi Ada, Sam here. Yes, we deliver to you!")
    apage.get_by_role("button", name="Send reply").click()

    log.get_by_text("Hi Ada, Sam here. Yes, we deliver to you!").wait_for()
    assert log.locator(".m.agent").first.inner_text().startswith("Sam")
    vpage.screenshot(path="/tmp/chat_widget.png")
    apage.screenshot(path="/tmp/chat_agent.png", full_page=True)
    lead.refresh_from_db()
    assert lead.owner.username == "sam"

    # "Ask us to erase my data" POSTs the erasure request and shows the answer.
    vpage.once("dialog", lambda dialog: dialog.accept())
    chat.get_by_role("button", name="Ask us to erase my data").click()
    answer = chat.get_by_role("group", name="Your data").get_by_role("status")
    for _ in range(50):
        if answer.inner_text().strip():
            break
        vpage.wait_for_timeout(100)
    assert answer.inner_text().strip()
    assert "Something went wrong" not in answer.inner_text()
    visitor.close()
    agent.close()


def test_widget_survives_a_reload_and_a_network_drop(browser, asgi_server) -> None:
    site = install_demo_site(origins=[asgi_server])
    site.business_hours = ALWAYS_OPEN
    site.save()
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(f"{asgi_server}/chat/demo/site/")
    chat = page.locator("#leadcrm-chat")
    chat.get_by_role("button", name="Chat with us").click()
    log = chat.get_by_role("log", name="Chat messages")
    chat.get_by_label("Your message").fill("Where can I park?")
    chat.get_by_role("button", name="Send").click()
    log.get_by_text("free parking spaces").wait_for()

    page.reload()  # same visitor, same open conversation, history shown again
    chat.get_by_role("log", name="Chat messages").get_by_text("free parking spaces").wait_for()

    context.set_offline(True)
    chat.get_by_label("Your message").fill("Can I bring my dog?")
    chat.get_by_role("button", name="Send").click()
    page.wait_for_timeout(300)
    assert log.locator(".m.pending").count() == 1  # kept in the outbox, not lost
    context.set_offline(False)
    log.get_by_text("Dogs are welcome").wait_for()
    assert log.locator(".m.pending").count() == 0
    assert log.get_by_text("Can I bring my dog?").count() == 1  # sent once, shown once
    context.close()


STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'"


@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG on", "DEBUG off"])
def test_widget_works_on_a_host_page_with_a_strict_content_security_policy(
    browser, asgi_server, settings, debug
) -> None:
    settings.DEBUG = debug
    site = install_demo_site(origins=[asgi_server])
    site.business_hours = ALWAYS_OPEN
    site.save()
    host_page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Strict shop</title></head>"
        "<body><h1>A shop with a strict CSP</h1>"
        f'<script src="/static/chatbot/widget.js" data-site="{site.public_key}" async></script>'
        "</body></html>"
    )
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    # The host page itself comes with the strict policy (same origin as the CRM, so 'self' covers
    # the widget's script, stylesheet, API and websocket).
    page.route(
        f"{asgi_server}/strict-shop/",
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            body=host_page,
            headers={"Content-Security-Policy": STRICT_CSP},
        ),
    )
    page.goto(f"{asgi_server}/strict-shop/")
    chat = page.locator("#leadcrm-chat")
    launcher = chat.get_by_role("button", name="Chat with us")
    launcher.wait_for()
    # Styled by widget.css: fixed in the corner, in the brand colour (not an unstyled button).
    assert launcher.evaluate("b => getComputedStyle(b.parentNode).position") == "fixed"
    assert launcher.evaluate("b => getComputedStyle(b).backgroundColor") != "rgb(239, 239, 239)"
    launcher.click()
    log = chat.get_by_role("log", name="Chat messages")
    log.locator(".m.bot").first.wait_for()
    chat.get_by_label("Your message").fill("Do you deliver?")
    chat.get_by_role("button", name="Send").click()
    log.get_by_text("We deliver within 10 km").wait_for()
    page.wait_for_timeout(300)
    page.screenshot(path=f"/tmp/chat_widget_strict_csp_{'debug' if debug else 'prod'}.png")
    assert violations == []
    context.close()
