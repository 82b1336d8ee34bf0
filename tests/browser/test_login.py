from __future__ import annotations

import pytest

from tests.browser.conftest import login
from tests.factories import make_lead, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_salesperson_logs_in_lands_on_their_queue_and_sees_their_counts(page, live_server) -> None:
    seller = make_user("sam")
    make_lead(owner=seller, first_name="Own", last_name="Lead")
    make_lead(first_name="Free", last_name="Lead")  # unassigned: visible
    make_lead(owner=make_user("other"), first_name="Hidden", last_name="Lead")  # someone else's

    login(page, live_server.url, "sam")

    assert page.url.rstrip("/").endswith("/crm")
    assert page.locator("h1").inner_text() == "Your queue"
    table = page.locator("#queue-table")
    assert table.get_by_role("link", name="Own Lead", exact=True).is_visible()
    assert table.get_by_role("link", name="Free Lead", exact=True).is_visible()
    assert table.get_by_text("Hidden Lead").count() == 0

    page.get_by_role("link", name="Home").click()
    assert "Welcome" in page.locator("h1").inner_text()
    assert page.locator(".stats li").first.inner_text().startswith("2")


def test_wrong_password_is_told_plainly(page, live_server) -> None:
    make_user("sam")
    login(page, live_server.url, "sam", "wrong")
    assert page.get_by_role("alert").is_visible()
