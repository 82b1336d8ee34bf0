"""Consent: every path that sets a consent flag records where it came from; withdrawal too."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from leadcrm import services
from leadcrm.models import Consent, Lead
from tests.factories import make_lead
from tests.leadcrm.test_admin import lead_form_data

pytestmark = pytest.mark.django_db


def test_create_lead_refuses_consent_without_a_source() -> None:
    with pytest.raises(ValidationError) as refused:
        services.create_lead(email="a@example.com", marketing_consent=True)
    assert "marketing_consent" in refused.value.message_dict
    assert not Lead.objects.exists()
    assert not Consent.objects.exists()


def test_create_lead_with_a_source_records_each_consent_given(manager) -> None:
    lead = services.create_lead(
        email="a@example.com",
        marketing_consent=True,
        contact_consent=True,
        consent_source="salesperson",
        consent_text="Ticked both boxes on the event sign-up sheet",
        consent_text_version="event-2026",
        recorded_by=manager,
    )
    rows = {c.purpose: c for c in lead.consents.all()}
    assert set(rows) == {"marketing", "contact"}
    for row in rows.values():
        assert (row.granted, row.source, row.recorded_by) == (True, "salesperson", manager)
        assert row.text == "Ticked both boxes on the event sign-up sheet"
        assert row.text_version == "event-2026"
        assert row.recorded_at == lead.marketing_consent_at


def test_update_lead_records_withdrawal_and_ignores_unchanged_flags() -> None:
    lead = services.create_lead(email="w@example.com", marketing_consent=True, consent_source="import")
    # Sending the current value changes nothing and needs no source.
    services.update_lead(lead=lead, marketing_consent=True, job_title="CEO")
    assert lead.consents.count() == 1
    with pytest.raises(ValidationError):
        services.update_lead(lead=lead, marketing_consent=False)
    lead.refresh_from_db()
    assert lead.marketing_consent

    services.update_lead(
        lead=lead, marketing_consent=False, consent_source="widget", consent_text="Unsubscribe"
    )
    lead.refresh_from_db()
    assert (lead.marketing_consent, lead.marketing_consent_at) == (False, None)
    withdrawn = lead.consents.order_by("-recorded_at", "-id").first()
    assert (withdrawn.granted, withdrawn.source, withdrawn.text) == (False, "widget", "Unsubscribe")


def test_consent_times_cannot_be_written_without_a_consent() -> None:
    lead = make_lead()
    with pytest.raises(ValidationError):
        services.update_lead(lead=lead, marketing_consent_at=timezone.now() - timezone.timedelta(days=9))


def test_edit_lead_passes_the_source_and_who(manager) -> None:
    lead = make_lead()
    services.edit_lead(lead=lead, changes={"contact_consent": True}, by=manager, consent_source="api")
    row = lead.consents.get()
    assert (row.purpose, row.source, row.recorded_by) == ("contact", "api", manager)


def test_api_records_consent_from_the_api_with_the_user(api_client_for) -> None:
    client, user = api_client_for("manager")
    created = client.post(
        "/api/v1/leads/", {"email": "api@example.com", "marketing_consent": True}, format="json"
    )
    assert created.status_code == 201, created.content
    lead = Lead.objects.get(email="api@example.com")
    row = lead.consents.get()
    assert (row.source, row.recorded_by, row.granted) == ("api", user, True)

    withdrawn = client.patch(f"/api/v1/leads/{lead.pk}/", {"marketing_consent": False}, format="json")
    assert withdrawn.status_code == 200, withdrawn.content
    assert list(lead.consents.order_by("id").values_list("granted", "source")) == [
        (True, "api"),
        (False, "api"),
    ]


@pytest.fixture
def api_client_for(manager, salesperson):
    from rest_framework.test import APIClient

    def make(role: str):
        user = manager if role == "manager" else salesperson
        client = APIClient()
        client.force_authenticate(user)
        return client, user

    return make


def test_admin_needs_how_they_agreed_and_records_it(client, manager) -> None:
    manager.is_staff = True
    manager.save()
    lead = make_lead()
    client.force_login(manager)
    url = reverse("admin:leadcrm_lead_change", args=[lead.pk])

    refused = client.post(url, lead_form_data(lead, marketing_consent=True))
    assert refused.status_code == 200
    assert b"Say how and where they agreed" in refused.content
    lead.refresh_from_db()
    assert not lead.marketing_consent
    assert not lead.consents.exists()

    saved = client.post(url, lead_form_data(lead, marketing_consent=True, consent_text="Email of 3 May"))
    assert saved.status_code == 302, saved.content.decode()[-3000:]
    lead.refresh_from_db()
    assert lead.marketing_consent
    row = lead.consents.get()
    assert (row.source, row.text, row.recorded_by) == ("admin", "Email of 3 May", manager)


def test_load_history_records_imported_consents() -> None:
    given = timezone.now() - timezone.timedelta(days=30)
    leads = [
        Lead(email="h1@example.com", marketing_consent=True, marketing_consent_at=given),
        Lead(email="h2@example.com"),
    ]
    services.load_history(leads=leads)
    rows = list(Consent.objects.values_list("lead__email", "purpose", "source", "recorded_at"))
    assert rows == [("h1@example.com", "marketing", "import", given)]


def test_salesperson_records_consent_on_the_lead_page_and_sees_the_history(client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    client.force_login(salesperson)
    url = reverse("privacy:consents", args=[lead.pk])

    empty = client.get(url, HTTP_HX_REQUEST="true")
    assert empty.status_code == 200
    assert b"No consent recorded yet" in empty.content

    missing = client.post(url, {"purpose": "marketing", "granted": "yes", "text": ""}, HTTP_HX_REQUEST="true")
    assert missing.status_code == 400
    assert not lead.consents.exists()

    given = client.post(
        url,
        {"purpose": "marketing", "granted": "yes", "text": "Asked for the newsletter"},
        HTTP_HX_REQUEST="true",
    )
    assert given.status_code == 200
    assert b"Asked for the newsletter" in given.content
    row = lead.consents.get()
    assert (row.source, row.recorded_by, row.granted) == ("salesperson", salesperson, True)
    lead.refresh_from_db()
    assert lead.marketing_consent


def test_someone_elses_lead_shows_no_consent_history_and_takes_no_consent(
    client, salesperson, manager
) -> None:
    lead = make_lead(owner=manager)
    client.force_login(salesperson)
    url = reverse("privacy:consents", args=[lead.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"purpose": "marketing", "granted": "yes", "text": "x"}).status_code == 404
    unclaimed = make_lead()
    assert (
        client.post(
            reverse("privacy:consents", args=[unclaimed.pk]),
            {"purpose": "marketing", "granted": "yes", "text": "x"},
        ).status_code
        == 403
    )
    assert not Consent.objects.exists()


def test_the_timeline_page_loads_the_consent_history(client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    client.force_login(salesperson)
    page = client.get(reverse("leadcrm:lead_timeline", args=[lead.pk]))
    assert page.status_code == 200
    assert reverse("privacy:consents", args=[lead.pk]).encode() in page.content


def test_data_migration_records_a_consent_for_every_flag_already_true() -> None:
    migration = importlib.import_module("leadcrm.migrations.0006_consent_rows_for_existing_flags")
    # Leads from before consent records: flags set without rows (as the old code wrote them).
    old = make_lead(marketing_consent=True, contact_consent=True)
    given_at = timezone.now() - timezone.timedelta(days=400)
    Lead.objects.filter(pk=old.pk).update(marketing_consent_at=given_at)
    without = make_lead()
    recorded = services.create_lead(email="r@example.com", contact_consent=True, consent_source="widget")

    migration.add_consent_rows(apps, SimpleNamespace(connection=connection))

    rows = {(c.lead_id, c.purpose): c for c in Consent.objects.all()}
    assert set(rows) == {(old.pk, "marketing"), (old.pk, "contact"), (recorded.pk, "contact")}
    assert rows[(old.pk, "marketing")].recorded_at == given_at
    assert rows[(old.pk, "marketing")].source == "import"
    assert rows[(old.pk, "marketing")].text == "(recorded before consent records existed)"
    assert rows[(old.pk, "contact")].recorded_at == old.created_at
    assert rows[(recorded.pk, "contact")].source == "widget"  # its own row, not a second one
    assert not Consent.objects.filter(lead=without).exists()


def test_email_tracking_is_not_stored_without_marketing_consent(client, salesperson) -> None:
    from rest_framework.test import APIClient

    lead = make_lead(owner=salesperson)
    with pytest.raises(ValidationError) as refused:
        services.record_interaction(lead=lead, kind="email_open", payload={"subject": "Spring sale"})
    assert "not agreed to marketing" in str(refused.value)
    with pytest.raises(ValidationError):
        services.record_interaction(lead=lead.pk, kind="email_click")
    services.record_interaction(lead=lead, kind="email_reply")  # their own reply is not tracking
    api = APIClient()
    api.force_authenticate(salesperson)
    answer = api.post(f"/api/v1/leads/{lead.pk}/interactions/", {"kind": "email_open"}, format="json")
    assert answer.status_code == 400
    assert "Record their marketing consent first" in answer.json()["kind"][0]
    assert list(lead.interactions.values_list("kind", flat=True)) == [6]

    services.record_consent(lead=lead, purpose="marketing", granted=True, source="salesperson", text="Yes")
    services.record_interaction(lead=lead, kind="email_open")
    assert lead.interactions.count() == 2
