"""The snippet in headless Chromium on the demo site: consent, page views, chat identity, timeline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.db import connections
from playwright.sync_api import Error as PlaywrightError

from chatbot import api as chat_api
from chatbot import faq
from demo.site import install_demo_site
from leadcrm.models import Interaction, InteractionKind, Lead
from tests.browser.conftest import login
from tests.factories import make_manager
from tests.tracking.conftest import _fresh_caches  # noqa: F401  (autouse: clean limit counters and caches)
from tracking import services
from tracking.models import TrackedEvent, TrackingMode

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ALWAYS_OPEN = {day: [["00:00", "00:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'"


def wait_for_snippet(page, timeout: float = 10.0) -> None:
    """The snippet loaded on this page. Polled from Python: Playwright's polling wait_for_function
    evaluates its predicate with `new Function`, which a CSP without 'unsafe-eval' refuses whenever
    the first check is not already true (e.g. the page after a form's navigation)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if page.evaluate(
                "typeof window.leadcrm === 'object' && typeof window.leadcrm.track === 'function'"
            ):
                return
        except PlaywrightError:  # the page is navigating: its context went away
            pass
        time.sleep(0.1)
    raise AssertionError("the tracking snippet did not load")


@pytest.fixture
def server(transactional_db: None, settings) -> Iterator[str]:
    """Uvicorn serving config.asgi in a thread on a free loopback port."""
    import uvicorn

    from config.asgi import application

    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
    chat_api._sites.clear()
    faq._cache.clear()
    services.clear_caches()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(10)
    connections.close_all()


def wait_until(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_page_views_before_the_chat_appear_on_the_leads_timeline(browser, server, debug_mode) -> None:
    # With DEBUG off and on (conftest's debug_mode): the demo runs with DEBUG.
    site = install_demo_site(origins=[server])
    site.business_hours = ALWAYS_OPEN
    site.save()
    services.set_tracking_mode(site=site, mode=TrackingMode.AFTER_CONSENT)
    make_manager("boss")

    visitor = browser.new_context(viewport={"width": 1100, "height": 800})
    visitor.set_default_timeout(10_000)
    page = visitor.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{server}/chat/demo/site/")
    wait_for_snippet(page)
    page.wait_for_timeout(500)
    assert TrackedEvent.objects.count() == 0  # after-consent mode: nothing before the visitor agrees

    page.get_by_role("button", name="Allow visit statistics").click()
    wait_until(lambda: TrackedEvent.objects.filter(type=1).count() == 1)
    page.evaluate("window.leadcrm.track('viewed_menu', {section: 'cakes'})")
    page.get_by_role("link", name="Cakes").click()
    page.wait_for_url("**/site/cakes/")
    wait_until(lambda: TrackedEvent.objects.filter(type=1).count() == 2)
    vid = TrackedEvent.objects.values_list("visitor_id", flat=True).first()
    assert vid
    assert set(TrackedEvent.objects.values_list("visitor_id", flat=True)) == {vid}
    assert TrackedEvent.objects.filter(type=5).exists()  # time on the first page, sent when leaving it
    assert TrackedEvent.objects.filter(type=4, payload__event="viewed_menu").exists()

    chat = page.locator("#leadcrm-chat")
    chat.get_by_role("button", name="Chat with us").click()
    log = chat.get_by_role("log", name="Chat messages")
    log.locator(".m.bot").first.wait_for()
    chat.get_by_label("Your message").fill("Do you deliver to my home?")
    chat.get_by_role("button", name="Send").click()
    log.get_by_text("We deliver within 10 km").wait_for()
    chat.get_by_role("button", name="Leave my contact details").click()
    form = chat.get_by_role("form", name="Your contact details")
    form.get_by_label("Name", exact=True).fill("Ada Lovelace")
    form.get_by_label("Email", exact=True).fill("ada@example.com")
    form.locator("input[name=contact_consent]").check()
    form.get_by_role("button", name="Save my details").click()
    log.get_by_text("Thanks, Ada!").wait_for()
    lead = Lead.objects.get(email="ada@example.com")

    # The next page the visitor opens carries the chat's token: the server links and moves.
    page.get_by_role("link", name="Visit us").click()
    page.wait_for_url("**/site/visit/")
    wait_until(lambda: not TrackedEvent.objects.filter(visitor_id=vid).exists())
    wait_until(
        lambda: Interaction.objects.filter(lead=lead, payload__url=f"{server}/chat/demo/site/visit/").exists()
    )
    # What only the snippet saw before the chat is on the lead's timeline now.
    custom = Interaction.objects.get(
        lead=lead, client_event_id__startswith="trk_", payload__event="viewed_menu"
    )
    assert custom.payload["props"] == {"section": "cakes"}
    assert custom.occurred_at < lead.created_at
    # The widget records the pages it sees too: each page is on the timeline once, not twice.
    per_url: dict[str, int] = {}
    for url in Interaction.objects.filter(lead=lead, kind=InteractionKind.PAGE_VIEW).values_list(
        "payload__url", flat=True
    ):
        per_url[url.split("?")[0]] = per_url.get(url.split("?")[0], 0) + 1
    assert per_url == {f"{server}/chat/demo/site/{p}": 1 for p in ("", "cakes/", "visit/")}, per_url
    assert violations == []
    visitor.close()

    # A salesperson sees them on the lead's timeline, before the chat.
    staff = browser.new_context(viewport={"width": 1280, "height": 900})
    staff.set_default_timeout(10_000)
    spage = staff.new_page()
    login(spage, server, "boss")
    spage.goto(f"{server}/crm/leads/{lead.pk}/")
    earlier = spage.locator("li.kind-custom_event", has_text="Custom event — viewed_menu").first
    earlier.wait_for()
    earlier.scroll_into_view_if_needed()
    spage.screenshot(path=f"/tmp/tracking_timeline_{'debug' if debug_mode else 'prod'}.png")
    staff.close()


def test_do_not_track_sends_nothing_at_all(browser, server) -> None:
    site = install_demo_site(origins=[server])
    services.set_tracking_mode(site=site, mode=TrackingMode.ANONYMOUS_UNTIL_CONSENT)
    context = browser.new_context()
    context.add_init_script("Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})")
    page = context.new_page()
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/api/v1/track/" in r.url else None)
    page.goto(f"{server}/chat/demo/site/")
    wait_for_snippet(page)
    page.evaluate("window.leadcrm.consent(true); window.leadcrm.track('signup')")
    page.wait_for_timeout(800)
    assert sent == []
    assert TrackedEvent.objects.count() == 0
    context.close()


def test_snippet_works_on_a_strict_csp_page_with_downloads_forms_and_custom_events(browser, server) -> None:
    site = install_demo_site(origins=[server])
    services.set_tracking_mode(site=site, mode=TrackingMode.ANONYMOUS_UNTIL_CONSENT)
    host = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Strict shop</title></head><body>"
        '<a href="/files/menu.pdf">Menu (PDF)</a>'
        '<form id="newsletter" action="/strict-shop/"><label>Email <input name=email></label>'
        "<button>Subscribe</button></form>"
        f'<script src="/static/tracking/track.js" data-site="{site.public_key}" data-consent="granted" async></script>'
        "</body></html>"
    )
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.route(
        f"{server}/strict-shop/**",
        lambda route: route.fulfill(
            status=200, content_type="text/html", body=host, headers={"Content-Security-Policy": STRICT_CSP}
        ),
    )
    page.route(f"{server}/files/**", lambda route: route.fulfill(status=200, body=b"%PDF-1.4"))
    page.goto(f"{server}/strict-shop/?utm_source=newsletter")
    wait_for_snippet(page)
    wait_until(lambda: TrackedEvent.objects.filter(type=1).exists())
    page.evaluate("window.leadcrm.track('signup', {plan: 'pro'})")
    wait_until(lambda: TrackedEvent.objects.filter(type=4).exists())
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_role("button", name="Subscribe").click()
    wait_until(lambda: TrackedEvent.objects.filter(type=2).exists())
    wait_for_snippet(page)
    page.get_by_role("link", name="Menu (PDF)").click()  # opens the PDF: the beacon goes as the page unloads
    wait_until(lambda: TrackedEvent.objects.filter(type=3).exists())
    view = TrackedEvent.objects.filter(type=1).order_by("id").first()
    assert view.payload["utm_source"] == "newsletter"
    assert "?" not in view.payload["url"]
    assert view.visitor_id  # consent given on the tag: a signed id from the server
    assert TrackedEvent.objects.get(type=4).payload["props"] == {"plan": "pro"}
    assert TrackedEvent.objects.get(type=3).payload["file"] == f"{server}/files/menu.pdf"
    form = TrackedEvent.objects.get(type=2).payload
    assert form["form"] == "newsletter"
    assert "ada@example.com" not in str(form)  # no field values
    assert violations == []
    context.close()


def test_a_signed_identity_on_a_later_page_puts_the_earlier_pages_on_the_timeline(browser, server) -> None:
    site = install_demo_site(origins=[server])
    services.set_tracking_mode(site=site, mode=TrackingMode.AFTER_CONSENT)
    email = "grace@example.com"

    def shop(identity: str) -> str:
        return (
            "<!doctype html><html lang=en><head><meta charset=utf-8><title>Shop</title></head><body><h1>Shop</h1>"
            f'<script src="/static/tracking/track.js" data-site="{site.public_key}" data-consent="granted" '
            f"{identity} async></script></body></html>"
        )

    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.route(
        f"{server}/shop/**", lambda route: route.fulfill(status=200, content_type="text/html", body=shop(""))
    )
    page.route(
        f"{server}/account/welcome/",
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            body=shop(f'data-user-email="{email}" data-user-hash="{site.identity_signature(email)}"'),
        ),
    )
    for path in ("/shop/", "/shop/pricing/"):
        page.goto(f"{server}{path}?utm_campaign=spring")
        wait_until(lambda path=path: TrackedEvent.objects.filter(payload__url=f"{server}{path}").exists())
    assert not Lead.objects.filter(email=email).exists()
    page.goto(f"{server}/account/welcome/")  # the business's page, after the visitor logged in there
    wait_until(lambda: Lead.objects.filter(email=email).exists())
    lead = Lead.objects.get(email=email)
    wait_until(lambda: Interaction.objects.filter(lead=lead, kind=InteractionKind.PAGE_VIEW).count() == 3)
    urls = set(Interaction.objects.filter(lead=lead).values_list("payload__url", flat=True))
    assert {f"{server}/shop/", f"{server}/shop/pricing/"} <= urls
    assert Interaction.objects.filter(lead=lead, payload__utm_campaign="spring").count() == 2
    assert TrackedEvent.objects.count() == 0
    context.close()
