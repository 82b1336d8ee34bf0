"""Row changes are captured by PostgreSQL triggers, whatever wrote them."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import Entry
from audit.services import acting_as
from chatbot.models import Site
from leadcrm.models import Consent, Lead
from scoring.models import Rule
from scoring.services import rescore_leads
from tests.factories import insert_leads, make_follow_up, make_interaction, make_lead
from tests.scoring.helpers import make_rule

pytestmark = pytest.mark.usefixtures("postgres")


def entries(**filters) -> list[Entry]:
    return list(Entry.objects.filter(**filters).order_by("id"))


def test_queryset_update_is_recorded_with_the_actor_and_before_after(manager) -> None:
    lead = make_lead(company_name="Old Co")
    with acting_as(manager, command="fix_companies"):
        Lead.objects.filter(pk=lead.pk).update(company_name="New Co", industry="Bakery")

    (row,) = entries(action="changed", target_type="leadcrm.lead", target_id=str(lead.pk))
    assert row.actor == manager
    assert row.actor_label == manager.username
    assert row.source == "db"
    assert row.lead_id == lead.pk
    assert row.before == {"company_name": "Old Co", "industry": ""}
    assert row.after == {"company_name": "New Co", "industry": "Bakery"}


def test_raw_sql_is_recorded_with_the_actor(manager) -> None:
    lead = make_lead(phone="")
    with acting_as(manager), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Lead._meta.db_table} SET phone = %s WHERE id = %s", ["+49 30 1234", lead.pk])

    (row,) = entries(action="changed", target_id=str(lead.pk))
    assert row.actor == manager
    assert row.after == {"phone": "+49 30 1234"}


def test_a_change_without_any_context_is_the_systems() -> None:
    lead = make_lead()
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Lead._meta.db_table} SET city = 'Porto' WHERE id = %s", [lead.pk])
    (row,) = entries(action="changed", target_id=str(lead.pk))
    assert row.actor is None
    assert row.actor_label == ""


def test_creating_and_deleting_a_lead_is_recorded() -> None:
    lead = make_lead(first_name="Grace")
    created = entries(action="created", target_id=str(lead.pk))
    assert len(created) == 1
    assert created[0].after["first_name"] == "Grace"
    assert "rule_score" not in created[0].after  # machine columns are not copied

    lead_id = lead.pk
    lead.delete()
    (deleted,) = entries(action="deleted", target_id=str(lead_id))
    assert deleted.before["first_name"] == "Grace"


def test_a_bulk_insert_writes_one_summary_row_not_one_per_lead() -> None:
    insert_leads(500)
    rows = entries(action="created", target_type="leadcrm.lead")
    assert len(rows) == 1
    assert rows[0].summary.startswith("500 leads created by one statement")
    assert rows[0].after is None


def test_score_writes_record_nothing(manager) -> None:
    make_rule(name="Retail", category="fit", field="industry", operator="equals", value="Retail", points=10)
    leads = [make_lead(industry="Retail") for _ in range(3)]
    before = Entry.objects.count()
    with acting_as(manager):
        rescore_leads([lead.pk for lead in leads])  # scoring.store's bulk UPDATE … FROM
        Lead.objects.filter(pk__in=[lead.pk for lead in leads]).update(
            rescore_requested_at=timezone.now(), live_until=timezone.now(), last_activity_at=timezone.now()
        )
    assert Lead.objects.get(pk=leads[0].pk).rule_score == 10  # the write happened
    assert Entry.objects.count() == before


def test_a_change_of_a_machine_column_and_a_person_column_records_only_the_person_column() -> None:
    lead = make_lead()
    Lead.objects.filter(pk=lead.pk).update(priority=99, job_title="CEO")
    (row,) = entries(action="changed", target_id=str(lead.pk))
    assert row.before == {"job_title": ""}
    assert row.after == {"job_title": "CEO"}


def test_consent_follow_up_and_interaction_edits_are_tied_to_the_person() -> None:
    lead = make_lead()
    Consent.objects.create(lead=lead, purpose="contact", granted=True, source="api")
    follow_up = make_follow_up(lead, note="Call back")
    interaction = make_interaction(lead)
    interaction.payload = {"url": "/pricing"}
    interaction.save()
    follow_up.delete()

    kinds = {(e.target_type, e.action) for e in entries(lead_id=lead.pk)}
    assert ("leadcrm.consent", "created") in kinds
    assert ("leadcrm.followup", "created") in kinds
    assert ("leadcrm.followup", "deleted") in kinds
    assert ("leadcrm.interaction", "changed") in kinds
    assert ("leadcrm.interaction", "created") not in kinds  # no insert trigger on interactions


def test_rule_change_is_recorded_but_its_error_stamp_is_not(manager) -> None:
    rule = make_rule(name="Pricing page", points=5)
    with acting_as(manager):
        Rule.objects.filter(pk=rule.pk).update(points=8)
    Rule.objects.filter(pk=rule.pk).update(last_error="boom", last_error_at=timezone.now())
    changes = entries(action="changed", target_type="scoring.rule")
    assert [(c.before, c.after, c.actor) for c in changes] == [({"points": 5}, {"points": 8}, manager)]


def test_site_identity_secret_changes_are_recorded_without_the_secret() -> None:
    site = Site.objects.create(name="Bakery", allowed_origins=["https://bakery.example"])
    old_secret = site.identity_secret
    Site.objects.filter(pk=site.pk).update(
        identity_secret="new-secret-value", allowed_origins=["https://b.example"]
    )

    (created,) = entries(action="created", target_type="chatbot.site")
    assert created.after["identity_secret"] == "(hidden)"
    (row,) = entries(action="changed", target_type="chatbot.site")
    assert row.before["identity_secret"] == row.after["identity_secret"] == "(hidden)"
    assert row.after["allowed_origins"] == ["https://b.example"]
    stored = str(list(Entry.objects.values_list("before", "after")))
    assert old_secret not in stored
    assert "new-secret-value" not in stored


def test_an_api_edit_is_recorded_with_the_api_user(manager) -> None:
    lead = make_lead(job_title="")
    api = APIClient()
    api.force_authenticate(manager)
    response = api.patch(f"/api/v1/leads/{lead.pk}/", {"job_title": "Baker"}, format="json")
    assert response.status_code == 200, response.content

    (row,) = entries(action="changed", target_id=str(lead.pk))
    assert row.actor == manager
    assert row.after["job_title"] == "Baker"
    assert row.path == f"/api/v1/leads/{lead.pk}/"
    assert row.method == "PATCH"


def test_audit_rows_refuse_update_and_delete_in_the_database() -> None:
    make_lead()
    entry_table = Entry._meta.db_table
    for statement in (f"UPDATE {entry_table} SET summary = 'forged'", f"DELETE FROM {entry_table}"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    assert Entry.objects.exclude(summary="forged").count() == Entry.objects.count() >= 1
