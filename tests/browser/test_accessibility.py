"""axe-core on the main pages and on the chat widget: no serious or critical violations.

axe-core's script comes with the `axe-playwright-python` package (no download at run time).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.urls import reverse
from django.utils import timezone

from chatbot import api, faq
from demo.site import install_demo_site
from leadcrm.models import LeadStatus
from scoring.models import ScoreSnapshot
from tests.browser.conftest import login
from tests.factories import make_follow_up, make_interaction, make_lead, make_manager, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BAD = ("serious", "critical")
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ALWAYS_OPEN = {day: [["00:00", "00:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def seed_report_history(owners: list) -> None:
    """Six weeks of leads, some won or lost (scored before closing), so the reports have content."""
    now = timezone.now()
    for i in range(36):
        created = now - timedelta(days=40 - i, hours=i % 5)
        status = (LeadStatus.WON, LeadStatus.LOST, LeadStatus.WORKING)[i % 3]
        closed = created + timedelta(days=3) if status != LeadStatus.WORKING else None
        lead = make_lead(
            first_name=f"Guest{i}",
            owner=owners[i % len(owners)],
            status=status,
            created_at=created,
            closed_at=closed if closed and closed < now else None,
            grade=("A1", "B2", "C1")[i % 3],
            priority=90 - 2 * i,
            rule_score=90 - 2 * i,
            source=("referral", "web_form", "chat")[i % 3],
        )
        ScoreSnapshot.objects.create(
            lead=lead, taken_at=created, grade=lead.grade, priority=lead.priority, rule_score=lead.rule_score
        )
        make_follow_up(
            lead,
            assigned_to=lead.owner,
            due_at=created + timedelta(days=1),
            done_at=created + timedelta(days=1, hours=(-2 if i % 2 else 5)),
        )


def serious_violations(page, context: str | None = None) -> list[str]:
    """axe's serious and critical violations on the page as it is now, one readable line each."""
    results = Axe().run(page, context=context)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(
            " ".join(node["target"]) if isinstance(node["target"], list) else str(node["target"])
            for node in v["nodes"][:5]
        )
        for v in results.response["violations"]
        if v.get("impact") in BAD
    ]


def test_main_pages_have_no_serious_accessibility_violations(page, live_server) -> None:
    manager = make_manager("mona", first_name="Mona", last_name="Lisa")
    now = timezone.now()
    lead = make_lead(
        first_name="Mia",
        last_name="Santos",
        company_name="Corner Bakery",
        owner=manager,
        grade="A1",
        rule_score=80,
        priority=80,
        ml_probability=0.6,
        last_activity_at=now - timedelta(hours=2),
        score_breakdown=[{"rule": "title", "points": 15, "reason": "Decision maker"}],
    )
    make_lead(first_name="Tom", last_name="Baker", grade="B2", priority=40, rule_score=40)
    make_lead(
        first_name="Ana",
        last_name="Silva",
        status=LeadStatus.WON,
        closed_at=now - timedelta(days=2),
        owner=manager,
    )
    make_interaction(lead, "page_view", occurred_at=now - timedelta(hours=3), payload={"url": "/menu"})
    make_follow_up(
        lead, assigned_to=manager, due_at=now - timedelta(hours=1), note="Call back about the cake"
    )
    make_follow_up(lead, assigned_to=manager, due_at=now + timedelta(hours=1), note="Send the quote")
    seed_report_history([manager, make_user("sam", first_name="Sam", last_name="Seller")])

    page.goto(f"{live_server.url}/login/")
    found = {"login": serious_violations(page)}
    login(page, live_server.url, "mona")
    pages = {
        "queue": reverse("leadcrm:queue"),
        "lead panel": reverse("leadcrm:lead", args=[lead.pk]),
        "follow-ups": reverse("leadcrm:follow_ups"),
        "reports": reverse("leadcrm:reports"),
        "chat inbox": reverse("chatbot:inbox"),
        "chat reports": reverse("chatbot:reports"),
        "model page": reverse("ml:accuracy"),
    }
    for name, path in pages.items():
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None, name
        assert response.ok, f"{name}: {response.status}"
        page.wait_for_load_state("networkidle")
        found[name] = serious_violations(page)
        if name == "reports" and os.environ.get("DOCS_SCREENSHOTS"):
            page.screenshot(path=str(SHOTS / "reports.png"), full_page=True)

    assert {name: v for name, v in found.items() if v} == {}


def test_chat_widget_has_no_serious_violations_and_a_one_line_header(browser, live_server) -> None:
    api._sites.clear()  # per-process caches must not carry another test's site
    faq._cache.clear()
    site = install_demo_site(origins=[live_server.url])
    site.business_hours = ALWAYS_OPEN
    site.name = "Rosa's Bakery & Café — Artisan Breads, Wedding Cakes and Catering"
    site.save()
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(f"{live_server.url}/chat/demo/site/")
    chat = page.locator("#leadcrm-chat")
    chat.get_by_role("button", name="Chat with us").click()
    log = chat.get_by_role("log", name="Chat messages")
    log.locator(".m.bot").first.wait_for()

    violations = serious_violations(page)
    # The business name stays on one line (cut with an ellipsis), not wrapped onto three.
    name_lines = page.evaluate(
        """() => {
          const title = document.querySelector("#leadcrm-chat").shadowRoot.querySelector(".h strong");
          const range = document.createRange();
          range.selectNodeContents(title.firstChild);
          return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
        }"""
    )
    full_name = chat.locator(".h strong").get_attribute("title")

    context.close()
    assert violations == []
    assert name_lines == 1
    assert full_name == site.name  # the whole name is still there, as the tooltip
