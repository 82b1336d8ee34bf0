"""A manager edits the playbook in the browser and the talking points on a lead panel change.

Set DOCS_SCREENSHOTS=1 to refresh docs/screenshots/playbook.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from leadcrm import playbook
from tests.browser.conftest import login
from tests.factories import make_interaction, make_lead, make_manager

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def test_a_playbook_edit_changes_the_talking_points(page, live_server, tmp_path) -> None:
    make_manager("maria")
    book = playbook.apply_defaults(kind="shop")
    lead = make_lead(first_name="Lena", last_name="Vogel", status="working", priority=50)
    make_interaction(
        lead, kind="chat_message", payload={"text": "Is there a discount for students?", "from": "visitor"}
    )
    rule = book.rules.get(signal="chat", match__startswith="discount")

    login(page, live_server.url, "maria")
    page.goto(f"{live_server.url}/crm/leads/{lead.pk}/")
    points = page.locator("#lead-panel .talking-points")
    points.get_by_text("mention the loyalty card and this week's offers").wait_for()
    assert "Wrote “discount” in chat (1 message)." in points.inner_text()

    page.goto(f"{live_server.url}/crm/playbook/")
    item = page.locator(f'li[data-rule-id="{rule.pk}"]')
    # A bad edit first: the error shows in place, nothing is saved.
    item.get_by_label("Match").fill("")
    item.get_by_role("button", name="Save rule").click()
    page.locator(f'li[data-rule-id="{rule.pk}"]').get_by_text(
        "This signal needs something to match"
    ).wait_for()
    assert page.locator("h1").inner_text() == "Playbook"  # still the page, not an error fragment

    item = page.locator(f'li[data-rule-id="{rule.pk}"]')
    item.get_by_label("Match").fill("discount, students")
    item.get_by_label("Talking point").fill("Students get 10% off with their card — say so.")
    item.get_by_role("button", name="Save rule").click()
    page.get_by_text("Rule saved.").wait_for()
    if os.environ.get("DOCS_SCREENSHOTS"):
        SHOTS.mkdir(exist_ok=True)
        page.mouse.wheel(0, -100_000)
        page.screenshot(path=str(SHOTS / "playbook.png"))

    page.goto(f"{live_server.url}/crm/leads/{lead.pk}/")
    points = page.locator("#lead-panel .talking-points")
    points.get_by_text("Students get 10% off with their card — say so.").wait_for()
    assert "loyalty card" not in points.inner_text()

    if os.environ.get("DOCS_SCREENSHOTS"):  # the canned replies page, with an error in place
        page.goto(f"{live_server.url}/crm/canned-replies/")
        page.get_by_label("Title").fill("Hello")
        page.get_by_role("textbox", name="Reply", exact=True).fill(
            "Hi {name}, {agent_name} from the bakery here."
        )
        page.get_by_role("button", name="Add canned reply").click()
        page.get_by_text("Unknown merge field {name}.").wait_for()
        page.screenshot(path=str(SHOTS / "canned-replies.png"))
