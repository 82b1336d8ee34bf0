from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from leadcrm.models import Interaction, InteractionKind, Lead, LeadStatus
from leadcrm.services import change_status, create_lead, record_interaction, update_lead
from tests.factories import make_lead, make_user

pytestmark = pytest.mark.django_db


def test_invalid_email_is_refused_with_a_field_error() -> None:
    with pytest.raises(ValidationError) as err:
        create_lead(first_name="Ada", email="not-an-email")
    assert "email" in err.value.message_dict


def test_email_is_unique_ignoring_case() -> None:
    create_lead(email="Ada@Example.com")
    with pytest.raises(ValidationError) as err:
        create_lead(email="ada@example.COM")
    assert "can't be used" in err.value.message_dict["email"][0]


def test_database_enforces_case_insensitive_email_uniqueness() -> None:
    make_lead(email="x@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        Lead.objects.create(email="X@example.com")


def test_leads_without_email_may_coexist() -> None:
    create_lead(first_name="A")
    create_lead(first_name="B")
    assert Lead.objects.filter(email__isnull=True).count() == 2


def test_negative_employee_count_is_refused() -> None:
    with pytest.raises(ValidationError) as err:
        create_lead(company_name="Acme", employee_count=-3)
    assert "employee_count" in err.value.message_dict


def test_negative_employee_count_is_refused_by_the_database_too() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Lead.objects.create(employee_count=-1)


def test_unknown_lead_field_is_refused() -> None:
    with pytest.raises(ValidationError) as err:
        create_lead(favourite_colour="blue")
    assert "favourite_colour" in err.value.message_dict


def test_bad_country_and_timezone_are_explained() -> None:
    with pytest.raises(ValidationError) as err:
        create_lead(country="Germany", timezone="Mars/Olympus")
    assert "country" in err.value.message_dict
    assert "timezone" in err.value.message_dict


def test_unknown_interaction_kind_is_refused_naming_the_valid_ones() -> None:
    lead = make_lead()
    with pytest.raises(ValidationError) as err:
        record_interaction(lead=lead, kind="carrier_pigeon")
    message = err.value.message_dict["kind"][0]
    assert "carrier_pigeon" in message
    assert "page_view" in message
    assert not Interaction.objects.exists()


def test_database_refuses_an_unknown_kind_number() -> None:
    lead = make_lead()
    with pytest.raises(IntegrityError), transaction.atomic():
        Interaction.objects.create(lead=lead, kind=99)


def test_interaction_for_a_missing_lead_is_refused() -> None:
    with pytest.raises(ValidationError):
        record_interaction(lead=987654, kind="page_view")


def test_interaction_in_the_future_is_refused() -> None:
    from django.utils import timezone

    lead = make_lead()
    with pytest.raises(ValidationError):
        record_interaction(lead=lead, kind="call", occurred_at=timezone.now() + timezone.timedelta(days=2))


def test_record_interaction_stores_kind_compactly_and_bumps_last_activity() -> None:
    lead = make_lead(marketing_consent=True)  # email tracking needs it
    interaction = record_interaction(lead=lead, kind="email_click", payload={"subject": "Spring update"})
    interaction.refresh_from_db()
    lead.refresh_from_db()
    assert interaction.kind == InteractionKind.EMAIL_CLICK == 5
    assert interaction.channel == "email"
    assert lead.last_activity_at == interaction.occurred_at


def test_record_interaction_requests_a_rescore() -> None:
    lead = make_lead()
    Lead.objects.filter(pk=lead.pk).update(rescore_requested_at=None)
    record_interaction(lead=lead, kind="page_view")
    lead.refresh_from_db()
    # Inside the test transaction nothing commits, so the request is still pending.
    assert lead.rescore_requested_at is not None


def test_lost_needs_a_reason_and_closing_is_stamped() -> None:
    lead = make_lead()
    with pytest.raises(ValidationError):
        change_status(lead=lead, status=LeadStatus.LOST)
    change_status(lead=lead, status=LeadStatus.LOST, lost_reason="Too expensive", by=make_user())
    lead.refresh_from_db()
    assert lead.closed_at is not None
    assert lead.lost_reason == "Too expensive"
    note = lead.interactions.get(kind=InteractionKind.NOTE)
    assert note.payload["status_to"] == "lost"


def test_reopening_clears_the_close_time() -> None:
    lead = make_lead()
    change_status(lead=lead, status=LeadStatus.WON)
    change_status(lead=lead, status=LeadStatus.WORKING)
    lead.refresh_from_db()
    assert lead.closed_at is None


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValidationError):
        change_status(lead=make_lead(), status="maybe")


def test_status_and_profile_changes_do_not_overwrite_scores_written_meanwhile() -> None:
    lead = make_lead()  # the object a salesperson's request holds
    Lead.objects.filter(pk=lead.pk).update(rule_score=77, priority=0.9, grade="A")  # a worker's write
    change_status(lead=lead, status="working", note="called")
    update_lead(lead=lead, job_title="CTO")
    lead.refresh_from_db()
    assert (lead.status, lead.job_title) == ("working", "CTO")
    assert (lead.rule_score, lead.priority, lead.grade) == (77, 0.9, "A")


def test_consent_is_stamped_when_given_and_cleared_when_withdrawn() -> None:
    lead = create_lead(email="c@example.com", marketing_consent=True, consent_source="import")
    assert lead.marketing_consent_at is not None
    update_lead(lead=lead, marketing_consent=False, consent_source="api")
    assert lead.marketing_consent_at is None
    assert list(lead.consents.values_list("granted", "source")) == [(True, "import"), (False, "api")]


def test_visible_to_follows_the_role_rule(manager, salesperson, other_salesperson) -> None:
    mine = make_lead(owner=salesperson)
    free = make_lead()
    theirs = make_lead(owner=other_salesperson)
    assert set(Lead.objects.visible_to(salesperson)) == {mine, free}
    assert set(Lead.objects.visible_to(manager)) == {mine, free, theirs}
    assert not Lead.objects.visible_to(make_user(role=None)).exists()


def test_sentiment_outside_minus_one_to_one_is_refused_and_nothing_is_stored() -> None:
    lead = make_lead()
    with pytest.raises(ValidationError) as err:
        record_interaction(lead=lead, kind="chat_message", payload={"text": "hi"}, sentiment=1.5)
    assert "sentiment" in str(err.value).lower()
    assert not Interaction.objects.filter(lead=lead).exists()
    record_interaction(
        lead=lead, kind="chat_message", payload={"text": "hi"}, sentiment=-1.0
    )  # the edge is fine
    assert Interaction.objects.filter(lead=lead).count() == 1
