"""Playwright against Debian's Chromium (no browser download), logged in through the real login page.

Every browser test runs twice, with DEBUG off and on: the demo (`make demo`) runs with DEBUG, and
what the pages do on an error differs between the two (error pages, django-htmx's debug helper).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(autouse=True, params=[False, True], ids=["debug-off", "debug-on"])
def debug_mode(request: pytest.FixtureRequest, settings) -> bool:
    """DEBUG for the live server of this test (it runs in this process, so the setting reaches it)."""
    settings.DEBUG = request.param
    return bool(request.param)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def login(page, base_url: str, username: str, password: str = "pw-for-tests-123") -> None:
    """Log in through the real login form."""
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("networkidle")
