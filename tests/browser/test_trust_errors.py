"""A refused form in the lead panel is explained in place, styled and focused, with DEBUG on and off
(the autouse `debug_mode` fixture runs each test in both), and also without JavaScript.

With DEBUG, django-htmx's debug helper used to replace the whole document with the unstyled 4xx
fragment; base.html loads htmx with a plain script tag instead. These tests hold it there.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from leadcrm.models import FollowUp, Interaction, Lead
from tests.browser.conftest import login
from tests.factories import make_lead, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
UNSTYLED = "rgb(0, 0, 0)"  # the browser's default text colour: app.css not applied


def open_lead(page, base_url: str) -> tuple[Lead, object]:
    sam = make_user("sam")
    lead = make_lead(first_name="Ada", last_name="Byron", owner=sam, priority=10)
    make_lead(first_name="Lena", last_name="Weber", owner=sam, priority=5)
    login(page, base_url, "sam")
    page.goto(f"{base_url}/crm/leads/{lead.pk}/")
    return lead, page.locator("#lead-panel")


def assert_still_the_page(page) -> None:
    """The document was not swapped for a bare fragment: the nav, the queue and the styles remain."""
    assert page.locator("header.topbar").is_visible()
    assert page.locator("#queue-table").get_by_role("link", name="Lena Weber").is_visible()
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgba(0, 0, 0, 0)" or (
        page.evaluate("getComputedStyle(document.querySelector('header.topbar')).display") == "flex"
    )


def test_lost_without_a_reason_is_explained_in_place(page, live_server) -> None:
    _, panel = open_lead(page, live_server.url)
    panel.get_by_label("New status").select_option("lost")
    panel.get_by_role("button", name="Log outcome").click()
    error = panel.locator("#outcome-lost-err")
    error.get_by_text("Say why the lead was lost.").wait_for()
    assert_still_the_page(page)
    assert error.evaluate("e => getComputedStyle(e).color") != UNSTYLED
    assert page.evaluate("document.activeElement.id") == "outcome-lost-reason"
    assert page.get_by_label("Lost reason").get_attribute("aria-describedby") == "outcome-lost-err"


def test_an_empty_note_is_explained_in_place(page, live_server) -> None:
    _, panel = open_lead(page, live_server.url)
    panel.get_by_label("What happened").select_option("note")
    panel.get_by_role("button", name="Log outcome").click()
    panel.locator("#outcome-notes-err").get_by_text("nothing to log").wait_for()
    assert_still_the_page(page)
    assert page.evaluate("document.activeElement.id") == "outcome-notes"
    assert not Interaction.objects.exists()


def test_a_follow_up_in_the_past_is_explained_in_place(page, live_server) -> None:
    _, panel = open_lead(page, live_server.url)
    yesterday = (timezone.localtime() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    panel.get_by_label("Due").fill(yesterday)
    panel.get_by_role("button", name="Add follow-up").click()
    error = panel.locator("#follow-up-due-err")
    error.get_by_text("cannot be due in the past").wait_for()
    assert error.get_attribute("role") == "alert"
    assert_still_the_page(page)
    assert error.evaluate("e => getComputedStyle(e).color") != UNSTYLED
    assert page.evaluate("document.activeElement.id") == "follow-up-due"
    assert not FollowUp.objects.exists()


def test_a_lead_unclaimed_meanwhile_is_refused_in_place(page, live_server) -> None:
    lead, panel = open_lead(page, live_server.url)
    Lead.objects.filter(pk=lead.pk).update(owner=None)  # a manager unassigned it while the page was open
    panel.get_by_label("Notes").fill("Called, left a message")
    panel.get_by_role("button", name="Log outcome").click()
    message = page.locator("#flash").get_by_text("Claim this lead before logging outcomes on it.")
    message.wait_for()
    assert page.locator("#flash").get_attribute("role") == "status"  # announced
    assert message.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"
    assert_still_the_page(page)
    panel.get_by_role("button", name="Claim this lead").wait_for()  # the panel shows what to do instead
    assert not Interaction.objects.exists()


def test_without_javascript_the_error_comes_back_on_the_page(browser, live_server) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        _, panel = open_lead(page, live_server.url)
        panel.get_by_label("New status").select_option("lost")
        panel.get_by_label("Notes").fill("They chose a cheaper baker")
        panel.get_by_role("button", name="Log outcome").click()
        page.wait_for_load_state()
        assert panel.locator("#outcome-lost-err").get_by_text("Say why the lead was lost.").is_visible()
        # nothing typed is lost
        assert page.get_by_label("Notes").input_value() == "They chose a cheaper baker"
        assert_still_the_page(page)

        yesterday = (timezone.localtime() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        panel.get_by_label("Due").fill(yesterday)
        panel.get_by_role("button", name="Add follow-up").click()
        page.wait_for_load_state()
        assert panel.locator("#follow-up-due-err").get_by_text("cannot be due in the past").is_visible()
    finally:
        context.close()


def test_times_follow_the_browsers_zone_and_say_so(browser, live_server) -> None:
    """static/accounts/time_zone.js tells the server the browser's zone; every page labels its times."""
    context = browser.new_context(timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        lead, panel = open_lead(page, live_server.url)
        assert page.locator("header.topbar").get_by_text("Times in Asia/Tokyo").is_visible()
        assert panel.get_by_text("Times in Asia/Tokyo.").is_visible()
        Lead.objects.filter(pk=lead.pk).update(timezone="America/New_York")
        page.reload()
        assert panel.get_by_text("their time (America/New_York,").is_visible()
        page.get_by_role("link", name="Times in Asia/Tokyo").click()
        page.get_by_role("heading", name="Your settings").wait_for()
        assert page.get_by_label("Time zone").input_value() == ""  # the browser's, until one is picked
        page.screenshot(path=str(SHOTS / "profile_settings.png"))
        page.get_by_label("Time zone").select_option("Europe/Paris")
        page.get_by_role("button", name="Save settings").click()
        page.get_by_text("Settings saved.").wait_for()
        assert page.locator("header.topbar").get_by_text("Times in Europe/Paris").is_visible()
    finally:
        context.close()
