"""Follow-up sequences: templates, enrolment (hand, segment, trigger), steps in the beat task,
leaving on reply / conversion / opt-out, consent, idempotency and permissions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from chatbot import services as chat
from chatbot.models import Conversation
from demo.site import install_demo_site
from leadcrm import services as crm
from leadcrm.models import FollowUp, Interaction, InteractionKind
from outreach.models import OutboundEmail
from sequences import services
from sequences.models import (
    ConsentNeeded,
    Enrolment,
    EnrolmentState,
    EnrolSource,
    ExitReason,
    RunOutcome,
    Sequence,
    Step,
    StepKind,
    StepRun,
    Trigger,
    WaitUnit,
)
from sequences.tasks import run_due_steps
from tests.factories import make_lead, make_manager, make_segment, make_user

pytestmark = pytest.mark.django_db

SUBJECT = "Your order, {first_name}"
BODY = "Hello {first_name|there},\n\nthanks for asking {company} about cakes.\n\n{owner_name}"


def email_step(**fields) -> Step:
    return Step(
        kind=StepKind.EMAIL, subject=fields.pop("subject", SUBJECT), body=fields.pop("body", BODY), **fields
    )


def make_sequence(manager, *steps: Step, **fields) -> Sequence:
    sequence = services.save_sequence(
        sequence=Sequence(name=fields.pop("name", "Quote follow-up"), **fields), by=manager
    )
    for step in steps or (email_step(),):
        services.add_step(sequence=sequence, step=step, by=manager)
    return sequence


def enrol(sequence, lead, by, callbacks) -> Enrolment:
    with callbacks(execute=True):  # the first step runs right after commit (eager Celery here)
        enrolment = services.enrol_lead(sequence=sequence, lead=lead, by=by)
    enrolment.refresh_from_db()
    return enrolment


@pytest.fixture
def manager():
    return make_manager(first_name="Mona", last_name="Manager")


@pytest.fixture
def seller():
    return make_user(first_name="Sam", last_name="Seller", email="sam@bakery.example")


# --- Templates -------------------------------------------------------------------------------------


def test_merge_fields_are_filled_with_fallbacks_and_literal_braces() -> None:
    values = {"first_name": "", "company": "Crumb & Co", "owner_name": "Sam"}
    text = services.render_template(
        "Hi {first_name|there} at {company}, {{not a field}} — {owner_name}", values
    )
    assert text == "Hi there at Crumb & Co, {not a field} — Sam"


def test_an_unknown_merge_field_or_a_stray_brace_is_named() -> None:
    [unknown] = services.template_errors("Hello {firstname}")
    assert "{firstname}" in unknown
    assert "{first_name}" in unknown
    assert services.template_errors("Hello {first_name") != []
    assert services.template_errors("Hello {first_name|friend}, {{ok}}") == []


def test_an_unknown_merge_field_is_a_form_error_with_and_without_htmx(client, manager) -> None:
    sequence = make_sequence(manager)
    client.force_login(manager)
    data = {
        "kind": "email",
        "subject": "Hi {firstname}",
        "body": "Text",
        "wait_unit": "days",
        "task_due_hours": 24,
    }
    url = reverse("sequences:add_step", args=[sequence.pk])

    plain = client.post(url, data)
    htmx = client.post(url, data, headers={"HX-Request": "true"})

    for response in (plain, htmx):
        assert response.status_code == 400
        assert "Unknown merge field {firstname}" in response.content.decode()
    assert "<html" in plain.content.decode()  # the whole page again, with the typed text kept
    assert 'value="Hi {firstname}"' in plain.content.decode()
    assert "<html" not in htmx.content.decode()  # the steps card only
    assert sequence.steps.count() == 1


def test_a_manager_builds_a_sequence_in_the_pages(client, manager) -> None:
    client.force_login(manager)
    created = client.post(
        reverse("sequences:index"),
        {"name": "Wedding cake enquiry", "consent_needed": "contact", "active": "on"},
    )
    sequence = Sequence.objects.get(name="Wedding cake enquiry")
    assert created.status_code == 302
    url = reverse("sequences:add_step", args=[sequence.pk])
    for data in (
        {"kind": "email", "subject": SUBJECT, "body": BODY},
        {"kind": "wait", "wait_amount": 3, "wait_unit": "days"},
        {"kind": "task", "task_note": "Call about the tasting", "task_due_hours": 4},
    ):
        response = client.post(
            url, {"wait_unit": "days", "task_due_hours": 24, **data}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 200
    assert [s.kind for s in sequence.steps.order_by("position")] == ["email", "wait", "task"]
    page = client.get(reverse("sequences:index")).content.decode()
    assert "Email “Your order, {first_name}” → Wait 3 days → Task: Call about the tasting" in page
    missing_wait = client.post(url, {"kind": "wait", "wait_unit": "days", "task_due_hours": 24})
    assert missing_wait.status_code == 400
    assert "Say how long to wait" in missing_wait.content.decode()


# --- Enrolling and the first email -----------------------------------------------------------------


def test_enrolled_by_hand_the_first_email_goes_out_with_merge_fields(
    manager, seller, django_capture_on_commit_callbacks
) -> None:
    sequence = make_sequence(
        manager, email_step(), Step(kind=StepKind.WAIT, wait_amount=2, wait_unit=WaitUnit.DAYS)
    )
    lead = make_lead(first_name="Ada", company_name="Crumb & Co", owner=seller, marketing_consent=True)

    enrolment = enrol(sequence, lead, seller, django_capture_on_commit_callbacks)

    [message] = mail.outbox
    assert message.to == [lead.email]
    assert message.subject == "Your order, Ada"
    assert message.body.startswith("Hello Ada,\n\nthanks for asking Crumb & Co about cakes.\n\nSam Seller")
    assert "Sam Seller via LeadCRM" in message.from_email
    sent = Interaction.objects.get(lead=lead, kind=InteractionKind.EMAIL_SENT)
    assert sent.payload["subject"] == "Your order, Ada"
    [email_run, wait_run] = StepRun.objects.filter(enrolment=enrolment).order_by("position")
    assert (email_run.outcome, email_run.interaction_id) == (RunOutcome.SENT, sent.pk)
    assert wait_run.outcome == RunOutcome.WAITED
    assert enrolment.state == EnrolmentState.ACTIVE
    assert enrolment.next_run_at == wait_run.ran_at + timedelta(days=2)


def test_after_the_wait_the_task_goes_to_the_owner_and_the_sequence_finishes(
    manager, seller, django_capture_on_commit_callbacks
) -> None:
    sequence = make_sequence(
        manager,
        email_step(),
        Step(kind=StepKind.WAIT, wait_amount=3, wait_unit=WaitUnit.HOURS),
        Step(kind=StepKind.TASK, task_note="Call about the quote", task_due_hours=4),
    )
    lead = make_lead(owner=seller, marketing_consent=True)
    enrolment = enrol(sequence, lead, seller, django_capture_on_commit_callbacks)
    assert not FollowUp.objects.filter(lead=lead).exists()  # still waiting

    later = timezone.now() + timedelta(hours=3, minutes=1)
    services.tick(now=later)

    follow_up = FollowUp.objects.get(lead=lead)
    assert follow_up.assigned_to == seller
    assert follow_up.note.startswith("Call about the quote")
    assert follow_up.due_at == later + timedelta(hours=4)
    enrolment.refresh_from_db()
    assert enrolment.state == EnrolmentState.FINISHED
    assert len(mail.outbox) == 1


def test_a_task_for_a_lead_nobody_owns_still_gets_an_owner(
    manager, django_capture_on_commit_callbacks
) -> None:
    sequence = make_sequence(manager, Step(kind=StepKind.TASK, task_note="Call them", task_due_hours=1))
    lead = make_lead(owner=None)

    enrol(sequence, lead, manager, django_capture_on_commit_callbacks)

    follow_up = FollowUp.objects.get(lead=lead)
    assert follow_up.assigned_to is not None  # the routing rule's pick (here: the only manager)


def test_no_consent_skips_the_email_with_the_reason_and_goes_on(
    manager, seller, django_capture_on_commit_callbacks
) -> None:
    sequence = make_sequence(
        manager, email_step(), Step(kind=StepKind.TASK, task_note="Call", task_due_hours=2)
    )
    lead = make_lead(owner=seller, marketing_consent=False, contact_consent=True)

    enrolment = enrol(sequence, lead, seller, django_capture_on_commit_callbacks)

    assert mail.outbox == []
    assert not OutboundEmail.objects.exists()
    email_run = StepRun.objects.get(enrolment=enrolment, kind=StepKind.EMAIL)
    assert email_run.outcome == RunOutcome.SKIPPED
    assert email_run.reason == "No consent: this person has not agreed to marketing messages."
    assert FollowUp.objects.filter(lead=lead, assigned_to=seller).exists()


def test_a_contact_consent_sequence_emails_someone_who_agreed_to_be_contacted(
    manager, seller, django_capture_on_commit_callbacks
) -> None:
    sequence = make_sequence(manager, consent_needed=ConsentNeeded.CONTACT)
    agreed = make_lead(owner=seller, contact_consent=True)
    neither = make_lead(owner=seller)

    enrol(sequence, agreed, seller, django_capture_on_commit_callbacks)
    enrol(sequence, neither, seller, django_capture_on_commit_callbacks)

    assert [m.to for m in mail.outbox] == [[agreed.email]]
    skipped = StepRun.objects.get(enrolment__lead=neither)
    assert skipped.reason == "No consent: this person has not agreed to be contacted."


def test_a_rerun_of_the_beat_task_never_sends_a_step_twice(
    manager, seller, django_capture_on_commit_callbacks
) -> None:
    sequence = make_sequence(manager)
    lead = make_lead(owner=seller, marketing_consent=True)
    enrolment = enrol(sequence, lead, seller, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1

    # A retry of a batch that had already committed (the worker died before acknowledging):
    # the enrolment looks due at the same step again.
    Enrolment.objects.filter(pk=enrolment.pk).update(
        state=EnrolmentState.ACTIVE, next_position=0, next_run_at=timezone.now(), ended_at=None
    )
    with django_capture_on_commit_callbacks(execute=True):
        run_due_steps()
        run_due_steps()

    assert len(mail.outbox) == 1
    assert StepRun.objects.filter(enrolment=enrolment).count() == 1
    assert OutboundEmail.objects.count() == 1


def test_the_beat_task_picks_due_enrolments_only(manager, seller) -> None:
    sequence = make_sequence(manager)
    due = make_lead(owner=seller, marketing_consent=True)
    later = make_lead(owner=seller, marketing_consent=True)
    now = timezone.now()
    Enrolment.objects.create(sequence=sequence, lead=due, next_run_at=now - timedelta(minutes=1))
    Enrolment.objects.create(sequence=sequence, lead=later, next_run_at=now + timedelta(hours=1))

    assert services.run_due(now=now) == 1
    assert StepRun.objects.filter(enrolment__lead=due).exists()
    assert not StepRun.objects.filter(enrolment__lead=later).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_due_enrolments_are_picked_with_skip_locked_in_a_bounded_batch(manager, seller) -> None:
    sequence = make_sequence(manager)
    for _ in range(3):
        Enrolment.objects.create(sequence=sequence, lead=make_lead(owner=seller), next_run_at=timezone.now())

    with CaptureQueriesContext(connection) as queries:
        assert services.run_due(batch=2) == 2

    [pick] = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    assert "SKIP LOCKED" in pick
    assert "LIMIT 2" in pick
    assert Enrolment.objects.filter(state=EnrolmentState.ACTIVE).count() == 1  # the third waits its turn


def test_a_paused_sequence_waits(manager, seller) -> None:
    sequence = make_sequence(manager, active=False)
    lead = make_lead(owner=seller, marketing_consent=True)
    Enrolment.objects.create(sequence=sequence, lead=lead, next_run_at=timezone.now())

    assert services.run_due() == 0
    assert mail.outbox == []


def test_one_active_sequence_per_lead(manager, seller, django_capture_on_commit_callbacks) -> None:
    first = make_sequence(
        manager, email_step(), Step(kind=StepKind.WAIT, wait_amount=1, wait_unit=WaitUnit.DAYS)
    )
    second = make_sequence(manager, name="Newsletter")
    lead = make_lead(owner=seller, marketing_consent=True)
    enrol(first, lead, seller, django_capture_on_commit_callbacks)

    with pytest.raises(services.ValidationError, match="already in “Quote follow-up”"):
        services.enrol_lead(sequence=second, lead=lead, by=seller)


# --- Leaving -----------------------------------------------------------------------------------------


@pytest.fixture
def running(manager, seller, django_capture_on_commit_callbacks):
    """A lead who got the first email and waits two days for a task."""
    sequence = make_sequence(
        manager,
        email_step(),
        Step(kind=StepKind.WAIT, wait_amount=2, wait_unit=WaitUnit.DAYS),
        Step(kind=StepKind.TASK, task_note="Call", task_due_hours=1),
    )
    lead = make_lead(owner=seller, marketing_consent=True, contact_consent=True)
    return enrol(sequence, lead, seller, django_capture_on_commit_callbacks)


def ended(enrolment: Enrolment) -> tuple[str, str]:
    services.tick(now=timezone.now() + timedelta(days=3))  # past the wait: the task would be created
    enrolment.refresh_from_db()
    return enrolment.state, enrolment.exit_reason


def test_a_reply_stops_it(running) -> None:
    crm.record_interaction(lead=running.lead, kind="email_reply", payload={"text": "Thanks, call me"})

    assert ended(running) == (EnrolmentState.EXITED, ExitReason.REPLIED)
    assert running.outcome_text == "stopped: replied"
    assert not FollowUp.objects.filter(lead=running.lead).exists()  # the task step never ran


def test_their_chat_message_stops_it_but_ours_does_not(running, seller) -> None:
    crm.record_interaction(lead=running.lead, kind="chat_message", payload={"text": "Hi", "from": "agent"})
    services.apply_exits()
    running.refresh_from_db()
    assert running.state == EnrolmentState.ACTIVE

    crm.record_interaction(
        lead=running.lead, kind="chat_message", payload={"text": "Yes!", "from": "visitor"}
    )
    assert ended(running) == (EnrolmentState.EXITED, ExitReason.REPLIED)


def test_an_earlier_reply_does_not_stop_a_new_enrolment(
    manager, seller, django_capture_on_commit_callbacks
) -> None:
    lead = make_lead(owner=seller, marketing_consent=True)
    crm.record_interaction(
        lead=lead, kind="email_reply", occurred_at=timezone.now() - timedelta(days=5), payload={"text": "Old"}
    )
    enrolment = enrol(
        make_sequence(
            manager, email_step(), Step(kind=StepKind.WAIT, wait_amount=1, wait_unit=WaitUnit.DAYS)
        ),
        lead,
        seller,
        django_capture_on_commit_callbacks,
    )
    services.apply_exits()
    enrolment.refresh_from_db()
    assert enrolment.state == EnrolmentState.ACTIVE
    assert len(mail.outbox) == 1


def test_being_won_stops_it(running, seller) -> None:
    crm.change_status(lead=running.lead, status="won", by=seller)

    assert ended(running) == (EnrolmentState.EXITED, ExitReason.CONVERTED)


def test_an_unsubscribe_stops_it(running) -> None:
    crm.record_interaction(lead=running.lead, kind="unsubscribe")

    assert ended(running) == (EnrolmentState.EXITED, ExitReason.UNSUBSCRIBED)


def test_withdrawn_marketing_consent_stops_it(running) -> None:
    crm.record_consent(lead=running.lead, purpose="marketing", granted=False, source="salesperson")

    assert ended(running) == (EnrolmentState.EXITED, ExitReason.CONSENT_WITHDRAWN)


def test_erasure_stops_it(running) -> None:
    crm.anonymise_leads(lead_ids=[running.lead_id])

    assert ended(running) == (EnrolmentState.EXITED, ExitReason.ERASED)


def test_a_reply_before_a_due_email_step_stops_the_email(manager, seller) -> None:
    sequence = make_sequence(manager)
    lead = make_lead(owner=seller, marketing_consent=True)
    enrolment = Enrolment.objects.create(sequence=sequence, lead=lead, next_run_at=timezone.now())
    crm.record_interaction(lead=lead, kind="email_reply", payload={"text": "Already answered"})

    services.run_due()  # the batch's own exit check, without the minute's sweep

    assert mail.outbox == []
    enrolment.refresh_from_db()
    assert enrolment.exit_reason == ExitReason.REPLIED


# --- By segment and by trigger -------------------------------------------------------------------------


def test_a_segment_is_enrolled_at_once_skipping_who_cannot_join(
    manager, seller, django_assert_max_num_queries, django_capture_on_commit_callbacks
) -> None:
    sequence = make_sequence(
        manager, email_step(), Step(kind=StepKind.WAIT, wait_amount=1, wait_unit=WaitUnit.DAYS)
    )
    other = make_sequence(manager, name="Other")
    segment = make_segment("Wedding enquiries")
    members = [make_lead(owner=seller, marketing_consent=True) for _ in range(4)]
    won = make_lead(status="won")
    busy = make_lead(owner=seller)
    Enrolment.objects.create(sequence=other, lead=busy, next_run_at=timezone.now() + timedelta(days=9))
    crm.add_to_segment(segment=segment, leads=[*members, won, busy])

    with django_assert_max_num_queries(8):  # set-based: not one query per member
        result = services.enrol_segment(
            sequence=sequence, segment=segment, by=manager, follow_new_members=True
        )

    assert (result.enrolled, result.members, result.skipped) == (4, 6, 2)
    assert set(Enrolment.objects.filter(sequence=sequence).values_list("lead_id", flat=True)) == {
        m.pk for m in members
    }
    assert set(Enrolment.objects.filter(sequence=sequence).values_list("source", flat=True)) == {
        EnrolSource.SEGMENT
    }

    with django_capture_on_commit_callbacks(execute=True):  # the emails are sent after commit
        services.tick()
    assert len(mail.outbox) == 4

    newcomer = make_lead(owner=seller, marketing_consent=True)
    crm.add_to_segment(segment=segment, leads=[newcomer])
    with django_capture_on_commit_callbacks(execute=True):
        services.tick()
    assert Enrolment.objects.filter(sequence=sequence, lead=newcomer).exists()
    assert len(mail.outbox) == 5
    services.tick()  # members who finished or are waiting are never enrolled again
    assert Enrolment.objects.filter(sequence=sequence).count() == 5


def test_a_chat_callback_request_enrols_the_lead_in_the_callback_sequence(
    manager, django_capture_on_commit_callbacks
) -> None:
    make_sequence(
        manager, name="After a callback", trigger=Trigger.CALLBACK, consent_needed=ConsentNeeded.CONTACT
    )
    site = install_demo_site()
    lead = make_lead(phone="+49 30 1234", contact_consent=True)
    conversation = Conversation.objects.create(site=site, lead=lead)

    with django_capture_on_commit_callbacks(execute=True):
        chat.schedule_callback(conversation=conversation, due_at=timezone.now() + timedelta(hours=2))

    enrolment = Enrolment.objects.get(lead=lead)
    assert (enrolment.source, enrolment.sequence.name) == (EnrolSource.TRIGGER, "After a callback")
    assert [m.to for m in mail.outbox] == [[lead.email]]  # sent from the sequence's author (a manager)
    with django_capture_on_commit_callbacks(
        execute=True
    ):  # asking again moves the callback, no new enrolment
        chat.schedule_callback(conversation=conversation, due_at=timezone.now() + timedelta(hours=3))
    assert Enrolment.objects.filter(lead=lead).count() == 1


# --- Pages and permissions ------------------------------------------------------------------------------


def test_salespeople_cannot_open_or_change_sequences(client, manager, seller) -> None:
    sequence = make_sequence(manager)
    step = sequence.steps.get()
    client.force_login(seller)

    assert client.get(reverse("sequences:index")).status_code == 403
    assert client.get(reverse("sequences:detail", args=[sequence.pk])).status_code == 403
    assert client.post(reverse("sequences:delete_step", args=[step.pk])).status_code == 403
    segment = make_segment()
    assert (
        client.post(
            reverse("sequences:enrol_segment", args=[sequence.pk]), {"segment": segment.pk}
        ).status_code
        == 403
    )
    assert Step.objects.filter(pk=step.pk).exists()


def test_the_lead_panel_enrols_and_stops_for_whoever_may_change_the_lead(
    client, manager, seller, django_capture_on_commit_callbacks
) -> None:
    sequence = make_sequence(
        manager, email_step(), Step(kind=StepKind.WAIT, wait_amount=1, wait_unit=WaitUnit.DAYS)
    )
    mine = make_lead(owner=seller, marketing_consent=True)
    theirs = make_lead(owner=make_user())
    unclaimed = make_lead(owner=None)
    client.force_login(seller)

    panel = client.get(
        reverse("leadcrm:lead", args=[mine.pk]), headers={"HX-Request": "true"}
    ).content.decode()
    assert 'id="lead-sequence"' in panel
    assert "Quote follow-up" in panel
    url = reverse("sequences:enrol_lead", args=[theirs.pk])
    assert client.post(url, {"sequence": sequence.pk}).status_code == 404  # invisible: no id leak
    url = reverse("sequences:enrol_lead", args=[unclaimed.pk])
    assert client.post(url, {"sequence": sequence.pk}).status_code == 403  # claim it first
    assert not Enrolment.objects.filter(lead__in=[theirs, unclaimed]).exists()

    with django_capture_on_commit_callbacks(execute=True):
        card = client.post(
            reverse("sequences:enrol_lead", args=[mine.pk]),
            {"sequence": sequence.pk},
            headers={"HX-Request": "true"},
        )
    assert card.status_code == 200
    assert "Stop the sequence" in card.content.decode()
    enrolment = Enrolment.objects.get(lead=mine)
    assert len(mail.outbox) == 1

    empty = client.post(reverse("sequences:enrol_lead", args=[mine.pk]), {"sequence": ""})
    assert empty.status_code == 400
    assert "<html" in empty.content.decode()  # without JavaScript: the page again, with the error

    other_enrolment = Enrolment.objects.create(sequence=sequence, lead=theirs, next_run_at=timezone.now())
    assert client.post(reverse("sequences:stop", args=[other_enrolment.pk])).status_code == 404
    stopped = client.post(reverse("sequences:stop", args=[enrolment.pk]), headers={"HX-Request": "true"})
    assert "stopped: stopped by hand" in stopped.content.decode()
    enrolment.refresh_from_db()
    assert (enrolment.exit_reason, enrolment.stopped_by) == (ExitReason.STOPPED, seller)


def test_the_sequences_page_counts_active_finished_and_why_they_stopped(client, manager, seller) -> None:
    sequence = make_sequence(manager)
    for state, reason in [("active", ""), ("finished", ""), ("exited", "replied"), ("exited", "replied")]:
        Enrolment.objects.create(sequence=sequence, lead=make_lead(), state=state, exit_reason=reason)
    client.force_login(manager)

    page = client.get(reverse("sequences:index")).content.decode()

    assert "replied: 2" in page
    detail = client.get(reverse("sequences:detail", args=[sequence.pk])).content.decode()
    assert "1 active · 1 finished · 2 stopped (replied: 2)" in detail
