from __future__ import annotations

import pytest

from tests.browser.conftest import login
from tests.factories import make_lead, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_salesperson_logs_in_and_sees_their_counts(page, live_server) -> None:  # noqa: ANN001
    seller = make_user("sam")
    make_lead(owner=seller)
    make_lead()  # unassigned: visible
    make_lead(owner=make_user("other"))  # someone else's: hidden

    login(page, live_server.url, "sam")

    assert "Welcome" in page.locator("h1").inner_text()
    assert page.locator(".stats li").first.inner_text().startswith("2")


def test_wrong_password_is_told_plainly(page, live_server) -> None:  # noqa: ANN001
    make_user("sam")
    login(page, live_server.url, "sam", "wrong")
    assert page.get_by_role("alert").is_visible()
