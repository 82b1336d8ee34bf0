"""Erasure: personal data gone from every place listed, counts unchanged, one audit row left."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError
from django.db.models import Count
from django.urls import reverse

from audit import services as audit
from audit.models import Entry
from chatbot.models import Conversation, Message
from leadcrm import selectors
from leadcrm.models import FollowUp, Interaction, Lead
from privacy import services
from privacy.models import PrivacyRequest
from scoring.ml.features import training_leads
from tests.factories import make_lead

pytestmark = pytest.mark.django_db


def counts() -> list[tuple[str, str, int]]:
    return list(
        Lead.objects.values_list("status", "source").annotate(n=Count("id")).order_by("status", "source")
    )


def test_erasure_removes_personal_data_everywhere_and_keeps_the_counts(person, manager) -> None:
    lead = person.lead
    others = [make_lead(status="won", source="referral"), make_lead(source="chat")]
    LogEntry.objects.create(
        user=manager,
        content_type=ContentType.objects.get_for_model(Lead),
        object_id=str(lead.pk),
        object_repr=str(lead),
        action_flag=CHANGE,
        change_message="Changed email of Grace Hopper",
    )
    audit.record(manager, "viewed", Lead, lead.pk, summary="Viewed Grace Hopper", after={"email": lead.email})
    request, _ = services.request_erasure(lead=lead)
    before = counts()

    services.erase_person(lead=lead, by=manager)

    lead.refresh_from_db()
    assert lead.erased_at is not None
    personal = ("first_name", "last_name", "phone", "company_name", "job_title", "city", "visitor_id")
    assert all(getattr(lead, name) == "" for name in personal)
    assert (lead.email, lead.custom) == (None, {})
    assert (lead.status, lead.source, lead.industry) == ("new", "chat", "Software")  # kept for counts
    assert counts() == before
    assert lead.display_name == f"Erased lead #{lead.pk}"

    # Interactions stay (what and when), without their free text; kept keys stay.
    payloads = sorted((i.kind, i.payload) for i in Interaction.objects.filter(lead=lead))
    assert [p for _, p in payloads] == [{}, {"duration_s": 300}]
    assert FollowUp.objects.get(lead=lead).note == ""
    # Chat transcripts removed.
    assert not Message.objects.filter(conversation__lead=lead).exists()
    assert Conversation.objects.get(pk=person.conversation.pk).visitor_id == ""
    # Admin log and audit trail no longer quote the person.
    entry = LogEntry.objects.get(object_id=str(lead.pk))
    assert "Grace" not in entry.object_repr
    assert entry.change_message == ""
    for row in Entry.objects.filter(lead_id=lead.pk):
        assert "grace" not in f"{row.summary} {row.before} {row.after}".lower()
    erased = Entry.objects.filter(action="erased", lead_id=lead.pk)
    assert erased.count() == 1
    assert erased.get().actor == manager
    # Search no longer finds them.
    assert not Lead.objects.filter(email__iexact="grace@example.com").exists()
    assert services.find_person("grace@example.com") is None
    assert lead.pk not in [row.pk for row in selectors.lead_queue(user=manager, q="Grace")]
    assert lead.pk not in [row.pk for row in selectors.lead_queue(user=manager, q="Hopper Compilers")]
    # The open request is done; other people are untouched.
    request.refresh_from_db()
    assert (request.status, request.handled_by) == ("done", manager)
    assert all(Lead.objects.get(pk=o.pk).email == o.email for o in others)


def test_erased_leads_leave_the_training_data(manager) -> None:
    won = make_lead(status="won")
    lost = make_lead(status="lost", lost_reason="Price")
    Lead.objects.filter(pk__in=[won.pk, lost.pk]).update(closed_at=won.created_at)
    assert set(training_leads()) == {won, lost}

    services.erase_person(lead=lost, by=manager)

    assert set(training_leads()) == {won}
    lost.refresh_from_db()
    assert lost.lost_reason == "(erased)"  # the reason was free text
    assert lost.status == "lost"


def test_erasing_twice_is_refused(person, manager) -> None:
    services.erase_person(lead=person.lead, by=manager)
    with pytest.raises(ValidationError):
        services.erase_person(lead=person.lead, by=manager)


def test_manager_erases_after_confirming_on_the_page(client, manager, person) -> None:
    client.force_login(manager)
    url = reverse("privacy:erase", args=[person.lead.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert b"cannot be undone" in page.content
    assert b'style="' not in page.content
    assert b"<script>" not in page.content

    refused = client.post(url, {"confirm": "yes"})
    assert refused.status_code == 400
    person.lead.refresh_from_db()
    assert person.lead.erased_at is None

    done = client.post(url, {"confirm": "erase"})
    assert done.status_code == 302
    person.lead.refresh_from_db()
    assert person.lead.erased_at is not None


def test_erase_person_command_exits_non_zero_on_unknown_email(person) -> None:
    # Last in its test: the command line closes the database connection when it ends.
    with pytest.raises(SystemExit) as unknown:
        ManagementUtility(["manage.py", "erase_person", "nobody@example.com", "--yes"]).execute()
    assert unknown.value.code == 1


def test_erase_person_command_asks_first(person, monkeypatch, capsys) -> None:
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    with pytest.raises(CommandError, match="Nothing was erased"):
        call_command("erase_person", "grace@example.com")
    person.lead.refresh_from_db()
    assert person.lead.erased_at is None

    monkeypatch.setattr("builtins.input", lambda prompt: "erase")
    call_command("erase_person", "grace@example.com")
    person.lead.refresh_from_db()
    assert person.lead.erased_at is not None
    assert f"Lead #{person.lead.pk} erased" in capsys.readouterr().out


def test_erase_person_command_with_yes_does_not_ask(person, monkeypatch) -> None:
    def no_questions(prompt: str) -> str:
        raise AssertionError("asked")

    monkeypatch.setattr("builtins.input", no_questions)
    call_command("erase_person", "grace@example.com", "--yes")
    assert Lead.objects.get(pk=person.lead.pk).erased_at is not None


def test_requests_page_lists_and_declines_with_a_reason(client, manager, person) -> None:
    request, _ = services.request_erasure(lead=person.lead)
    client.force_login(manager)
    page = client.get(reverse("privacy:requests"))
    assert page.status_code == 200
    assert b"Grace Hopper" in page.content

    client.post(reverse("privacy:decline", args=[request.pk]), {"note": ""})
    request.refresh_from_db()
    assert request.status == "open"
    client.post(reverse("privacy:decline", args=[request.pk]), {"note": "Open invoice, kept by law"})
    request.refresh_from_db()
    assert (request.status, request.handled_by, request.note) == (
        "declined",
        manager,
        "Open invoice, kept by law",
    )
    assert PrivacyRequest.objects.count() == 1


def test_an_erased_person_leaves_the_working_queue_but_not_all_leads(person, manager) -> None:
    lead = person.lead
    assert lead in selectors.lead_queue(user=manager)
    services.erase_person(lead=lead, by=manager)
    assert lead not in selectors.lead_queue(user=manager)
    assert lead in selectors.lead_queue(user=manager, status="all")
