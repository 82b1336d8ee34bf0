"""The queue on a phone (390×844): the first leads show above the fold with the filters folded,
and a lead opens as its own page, at the top, with a way back (issue 16, item 8).

Set DOCS_SCREENSHOTS=1 to refresh docs/screenshots/queue-mobile.png and lead-mobile.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.conftest import login
from tests.factories import make_lead, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def shot(page, name: str, tmp_path: Path) -> None:
    folder = SHOTS if os.environ.get("DOCS_SCREENSHOTS") else tmp_path
    page.screenshot(path=str(folder / name))


def test_queue_is_usable_one_handed_on_a_phone(phone, live_server, tmp_path) -> None:
    seller = make_user("sam", first_name="Sam")
    names = ["Mia Santos", "Tom Baker", "Ana Silva", "Lee Chen", "Ola Berg", "Raj Patel"]
    leads = [
        make_lead(
            first_name=n.split()[0],
            last_name=n.split()[1],
            company_name="Corner Bakery",
            owner=seller,
            grade="B1",
            priority=90 - i,
            rule_score=90 - i,
        )
        for i, n in enumerate(names * 5)
    ]
    login(phone, live_server.url, "sam")
    phone.goto(f"{live_server.url}/crm/")
    phone.wait_for_load_state("networkidle")

    first_row = phone.locator("#queue-table tbody tr").first
    box = first_row.bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= PHONE["height"], f"first lead ends at y={box['y'] + box['height']}"
    # The filters are folded behind their summary, and open with one tap.
    assert not phone.locator("#id_q").is_visible()
    phone.get_by_text("Filters and sort").click()
    assert phone.locator("#id_q").is_visible()
    phone.get_by_text("Filters and sort").click()
    shot(phone, "queue-mobile.png", tmp_path)

    # Opening a lead is a page of its own, starting at the top: not a panel ~11,000 px below the list.
    phone.locator(f"#lead-link-{leads[0].pk}").click()
    phone.wait_for_url(f"**/crm/leads/{leads[0].pk}/")
    phone.wait_for_load_state("networkidle")
    assert phone.evaluate("window.scrollY") == 0
    heading = phone.locator("#lead-heading")
    head_box = heading.bounding_box()
    assert head_box is not None
    assert head_box["y"] < PHONE["height"] / 2, head_box
    assert not phone.locator("#queue-table").is_visible()
    shot(phone, "lead-mobile.png", tmp_path)

    back = phone.get_by_role("link", name="← Back to the queue")
    assert back.is_visible()
    back.click()
    phone.wait_for_url(f"{live_server.url}/crm/")
    assert phone.locator(f"#lead-link-{leads[0].pk}").is_visible()
