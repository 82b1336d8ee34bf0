"""A follow-up sequence in a real browser: a manager writes one with a first email, starts it for a
lead from the lead panel, the email goes out with its merge fields, and a reply stops it during the
wait that follows.

Set DOCS_SCREENSHOTS=1 to refresh the screenshots in docs/screenshots/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import expect

from leadcrm import services as crm
from sequences.models import Enrolment, EnrolmentState, ExitReason
from sequences.tasks import run_due_steps
from tests.browser.conftest import login
from tests.factories import make_lead, make_manager

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def shot(target, tmp_path: Path, name: str, **options) -> None:
    """A page (or one element of it) as a PNG: docs/screenshots/ with DOCS_SCREENSHOTS=1, else a temp dir."""
    folder = SCREENSHOTS if os.environ.get("DOCS_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(folder / name), **options)


def test_a_manager_writes_a_sequence_starts_it_from_the_panel_and_a_reply_stops_it(
    page, live_server, tmp_path
) -> None:
    make_manager("mona", first_name="Mona", last_name="Baker")
    lead = make_lead(
        first_name="Ada", company_name="Crumb & Co", marketing_consent=True, contact_consent=True
    )
    login(page, live_server.url, "mona")

    page.goto(f"{live_server.url}/sequences/")
    page.get_by_label("Name").fill("Wedding cake enquiry")
    page.get_by_role("button", name="Create sequence").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Wedding cake enquiry")

    # A typo in a merge field is explained in place, and the text typed is kept.
    page.get_by_label("Subject").fill("Your cake, {firstname}")
    page.get_by_label("Message").fill("Hello {first_name|there},\nthanks for asking {company} about a cake.")
    page.get_by_role("button", name="Add step").click()
    expect(page.locator("#step-subject-err")).to_contain_text("Unknown merge field {firstname}")
    page.get_by_label("Subject").fill("Your cake, {first_name}")
    page.get_by_role("button", name="Add step").click()
    expect(page.locator(".sequence-steps")).to_contain_text("Email “Your cake, {first_name}”")
    page.get_by_label("Step", exact=True).select_option(label="Wait")
    page.get_by_label("Wait for").fill("3")
    page.get_by_role("button", name="Add step").click()
    expect(page.locator(".sequence-steps")).to_contain_text("Wait 3 days")
    page.get_by_label("Step", exact=True).select_option(label="Create a task")
    page.get_by_label("What should the salesperson do?").fill("Call about the cake")
    page.get_by_role("button", name="Add step").click()
    expect(page.locator(".sequence-steps")).to_contain_text("Task: Call about the cake")
    shot(page, tmp_path, "sequence-editor.png", full_page=True)

    page.goto(f"{live_server.url}/crm/leads/{lead.pk}/")
    card = page.locator("#lead-sequence")
    card.get_by_label("Add to a sequence").select_option(label="Wedding cake enquiry")
    card.get_by_role("button", name="Start sequence").click()
    expect(card).to_contain_text("Stop the sequence")
    expect(card).to_contain_text("Next step: Task: Call about the cake")

    [message] = mail.outbox
    assert message.to == [lead.email]
    assert message.subject == "Your cake, Ada"
    assert message.body.startswith("Hello Ada,\nthanks for asking Crumb & Co about a cake.")
    page.reload()
    expect(page.locator("#lead-sequence")).to_contain_text("Wedding cake enquiry")
    expect(page.locator("#timeline-h").locator("..")).to_contain_text("Your cake, Ada")

    crm.record_interaction(lead=lead, kind="email_reply", payload={"text": "Yes please, call me"})
    run_due_steps()  # what the beat does every minute

    page.reload()
    expect(page.locator("#lead-sequence .sequence-outcome")).to_have_text("stopped: replied")
    shot(page.locator("#lead-sequence"), tmp_path, "lead-sequence-card.png")
    enrolment = Enrolment.objects.get(lead=lead)
    assert (enrolment.state, enrolment.exit_reason) == (EnrolmentState.EXITED, ExitReason.REPLIED)

    page.goto(f"{live_server.url}/sequences/")
    expect(page.locator("table")).to_contain_text("replied: 1")
    shot(page, tmp_path, "sequences.png", full_page=True)
