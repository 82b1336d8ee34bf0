"""The Content-Security-Policy in a real browser: the main pages and their HTMX interactions run
without a single violation, with DEBUG off and on.

Violations are collected two ways: `securitypolicyviolation` events (an init script on every page)
and Chromium's console errors that mention the policy.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from chatbot import services as chat
from demo.site import install_demo_site
from leadcrm.models import Lead
from tests.browser.conftest import login
from tests.browser.test_dashboard import rich_lead
from tests.factories import make_follow_up, make_lead, make_manager, make_user
from tests.scoring.helpers import make_rule

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolation({directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample,
                         source: e.sourceFile + ":" + e.lineNumber, page: location.pathname + location.search});
});
"""


@pytest.fixture
def violations(page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    page.context.expose_binding("__cspViolation", lambda source, v: found.append(v))
    page.context.add_init_script(WATCH)

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            found.append({"console": message.text, "page": page.url})

    page.on("console", on_console)
    page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm on "Revoke"
    return found


@pytest.fixture
def debug(debug_mode: bool) -> bool:
    """DEBUG of this run: every browser test runs with it off and on (conftest's debug_mode)."""
    return debug_mode


def settle(page) -> None:
    page.wait_for_load_state("networkidle")


def test_login_and_lockout_pages_are_clean(page, live_server, violations, debug, settings) -> None:
    make_user("sam")
    page.goto(f"{live_server.url}/login/")
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        page.get_by_label("Username").fill("sam")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        settle(page)
    alert = page.get_by_role("alert")
    assert "Too many failed attempts" in alert.inner_text()
    assert f"{settings.LOGIN_COOLOFF_MINUTES} minutes" in alert.inner_text()
    assert violations == []


def test_main_pages_and_htmx_interactions_raise_no_violation(page, live_server, violations, debug) -> None:
    boss = make_manager("boss", first_name="Bo", last_name="Boss", is_staff=True)
    sam = make_user("sam")
    mia = rich_lead(sam)
    make_lead(first_name="Noah", last_name="Becker", grade="A2", priority=70, company_name="North Oak & Co")
    make_lead(first_name="Lena", last_name="Weber", grade="B1", priority=60, owner=boss, status="won",
              closed_at=timezone.now())  # fmt: skip
    free = make_lead(first_name="Yara", last_name="Hughes", priority=30)
    make_follow_up(mia, assigned_to=boss, due_at=timezone.now() + timedelta(hours=3), note="Send the plan")
    rule = make_rule(name="Pricing page views")
    site = install_demo_site()
    conversation, _ = chat.start_conversation(
        site=site, visitor_id="v-csp-1", page_url="http://127.0.0.1:8000/"
    )
    chat.post_visitor_message(conversation=conversation, text="Do you deliver?")
    base = live_server.url

    login(page, base, "boss")
    page.goto(f"{base}/")
    settle(page)

    # Queue: filter (swap), open a lead (panel), bad input (400 swap), a follow-up, claim.
    page.goto(f"{base}/crm/")
    page.get_by_label("Grade").select_option("A")
    # A locator wait, not wait_for_function: that evaluates a string, which the CSP forbids.
    page.locator("#queue-table").get_by_text("Yara Hughes").first.wait_for(state="detached")
    page.locator("#queue-table").get_by_role("link", name="Mia Santos").click()
    panel = page.locator("#lead-panel")
    panel.get_by_role("heading", name="Mia Santos", exact=True).wait_for()
    panel.get_by_label("New status").select_option("lost")
    panel.get_by_role("button", name="Log outcome").click()
    panel.get_by_text("Say why the lead was lost.").wait_for()
    panel.get_by_role("button", name="Done").first.click()
    settle(page)
    page.evaluate("htmx.trigger(document.body, 'queue-changed')")
    settle(page)
    page.goto(f"{base}/crm/leads/{free.pk}/")
    page.get_by_role("button", name="Claim Yara Hughes").first.click()
    page.locator("#flash").get_by_text("is yours now").wait_for()
    assert Lead.objects.get(pk=free.pk).owner_id == boss.pk

    # The lead's timeline page and its filter.
    page.goto(f"{base}/crm/leads/{mia.pk}/timeline/")
    page.get_by_label("Show").select_option(index=1)
    settle(page)

    # Reports (bar charts), follow-ups.
    page.goto(f"{base}/crm/reports/")
    assert page.locator(".bar-track rect").count() > 0
    page.goto(f"{base}/crm/follow-ups/")
    settle(page)

    # Model accuracy: fairness select (htmx), retrain (htmx post).
    page.goto(f"{base}/ml/")
    if page.locator("#attribute option").count() > 1:
        page.locator("#attribute").select_option(index=1)
        settle(page)
    page.get_by_role("button", name="Retrain now").click()
    page.locator("#run-status .run").wait_for()
    settle(page)

    # Scoring admin: recompute progress, the rule's live matches and preview.
    page.goto(f"{base}/admin/scoring/rule/")
    settle(page)
    page.goto(f"{base}/admin/scoring/rule/{rule.pk}/change/")
    preview = page.get_by_label("Preview for a lead")
    preview.fill(str(mia.pk))
    preview.press("Enter")  # the static script keeps Enter from submitting the rule form
    page.locator("#rule-preview").wait_for(state="attached")
    settle(page)
    assert f"/admin/scoring/rule/{rule.pk}/change/" in page.url

    # Live chats: the inbox and a conversation's agent panel (its websocket is allowed by connect-src).
    page.goto(f"{base}/chat/")
    page.get_by_role("link", name="Open chat").first.click()
    page.locator("[data-chat-panel]").wait_for()
    settle(page)

    # API tokens: create (secret shown once), revoke (hx-confirm).
    page.goto(f"{base}/account/tokens/")
    page.get_by_label("Name").fill("Zapier")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-token-secret")
    secret.wait_for()
    assert secret.input_value().startswith("lcrm_")
    assert page.evaluate("document.activeElement.id") == "new-token-secret"
    page.get_by_role("button", name="Revoke token Zapier").click()
    page.get_by_text("revoked: it no longer works").wait_for()

    # The admin and the API docs (Swagger UI renders the schema).
    page.goto(f"{base}/admin/")
    settle(page)
    page.goto(f"{base}/admin/accounts/apitoken/")
    settle(page)
    page.goto(f"{base}/api/v1/docs/")
    page.locator(".swagger-ui .info .title").wait_for(timeout=20_000)  # the schema loaded and rendered
    settle(page)

    assert violations == []


def test_an_injected_inline_script_and_style_are_blocked(page, live_server, violations) -> None:
    """The policy really is enforced: what an attacker could inject into a page does not run."""
    make_user("sam")
    login(page, live_server.url, "sam")
    page.goto(f"{live_server.url}/crm/")
    page.evaluate(
        """() => {
        const s = document.createElement("script"); s.textContent = "window.__pwned = 1"; document.body.append(s);
        document.body.insertAdjacentHTML("beforeend", '<p id="styled" style="color: rgb(255, 0, 0)">x</p>');
    }"""
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("getComputedStyle(document.getElementById('styled')).color") != "rgb(255, 0, 0)"
    assert {v.get("directive") for v in violations} >= {"script-src-elem", "style-src-attr"}
