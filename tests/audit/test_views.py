"""The audit page, "viewed" rows and refused accesses."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from rest_framework.test import APIClient

from audit import services
from audit.models import Entry
from leadcrm.models import Lead
from tests.factories import make_lead

pytestmark = pytest.mark.django_db


def test_opening_a_lead_page_records_one_view(client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    client.force_login(salesperson)
    assert client.get(f"/crm/leads/{lead.pk}/").status_code == 200
    assert client.get(f"/crm/leads/{lead.pk}/", HTTP_HX_REQUEST="true").status_code == 200  # same window

    (row,) = Entry.objects.filter(action="viewed")
    assert (row.actor, row.target_type, row.lead_id) == (salesperson, "leadcrm.lead", lead.pk)
    assert row.path == f"/crm/leads/{lead.pk}/"


def test_api_retrieve_records_a_view(salesperson) -> None:
    lead = make_lead(owner=salesperson)
    api = APIClient()
    api.force_authenticate(salesperson)
    assert api.get(f"/api/v1/leads/{lead.pk}/").status_code == 200
    assert Entry.objects.filter(action="viewed", actor=salesperson, lead_id=lead.pk).count() == 1


def test_a_refused_lead_is_recorded_without_its_query_string(client, salesperson, other_salesperson) -> None:
    hidden = make_lead(owner=other_salesperson)
    client.force_login(salesperson)
    assert client.get(f"/crm/leads/{hidden.pk}/?q=jane@example.com").status_code == 404

    (row,) = Entry.objects.filter(action="refused")
    assert (row.actor, row.lead_id, row.target_id) == (salesperson, hidden.pk, str(hidden.pk))
    assert row.path == f"/crm/leads/{hidden.pk}/"
    assert "jane" not in str(Entry.objects.values_list("path", "summary"))
    assert not Entry.objects.filter(action="viewed").exists()


def test_a_refused_api_access_is_recorded(salesperson, other_salesperson) -> None:
    hidden = make_lead(owner=other_salesperson)
    api = APIClient()
    api.force_authenticate(salesperson)
    assert api.get(f"/api/v1/leads/{hidden.pk}/").status_code == 404
    assert Entry.objects.filter(action="refused", actor=salesperson, lead_id=hidden.pk).exists()


def test_anonymous_refusals_are_not_recorded(client) -> None:
    client.get("/crm/leads/999999/")
    assert not Entry.objects.exists()


def test_salespeople_get_403_and_that_is_recorded(client, salesperson) -> None:
    client.force_login(salesperson)
    assert client.get("/audit/").status_code == 403
    assert Entry.objects.filter(action="refused", actor=salesperson, path="/audit/").exists()


def test_managers_read_the_trail_with_filters(client, manager, salesperson) -> None:
    lead = make_lead()
    services.record(salesperson, "exported", Lead, lead.pk, summary="CSV export")
    services.record(manager, "viewed", Lead, 12345)
    client.force_login(manager)

    page = client.get("/audit/", {"actor": salesperson.username, "tz": "Europe/Berlin"})
    html = page.content.decode()
    assert page.status_code == 200
    assert "CSV export" in html
    assert "12345" not in html
    assert "Europe/Berlin" in html
    assert 'style="' not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)

    partial = client.get("/audit/", {"lead": lead.pk}, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200
    assert partial.content.decode().lstrip().startswith('<section id="audit-results"')


def test_the_page_explains_sqlite_or_shows_row_changes(client, manager) -> None:
    lead = make_lead()
    Lead.objects.filter(pk=lead.pk).update(city="Lisbon")
    client.force_login(manager)
    html = client.get("/audit/", {"lead": lead.pk}).content.decode()
    if connection.vendor == "postgresql":
        assert "Lisbon" in html
        assert "needs PostgreSQL" not in html
    else:
        assert "needs PostgreSQL" in html


def test_bad_filters_answer_400_with_what_to_do(client, manager) -> None:
    client.force_login(manager)
    response = client.get("/audit/", {"tz": "Mars/Olympus", "since": "2026-02-01", "until": "2026-01-01"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Unknown time zone" in html
    assert "swap them" in html


def test_pages_are_of_fifty_newest_first(client, manager) -> None:
    for i in range(51):
        services.record(manager, "viewed", Lead, i + 1)
    client.force_login(manager)
    first = client.get("/audit/").content.decode()
    assert "Older →" in first
    assert re.search(r"leadcrm\.lead #51\s", first)
    assert not re.search(r"leadcrm\.lead #1\s", first)
    second = client.get("/audit/", {"page": 2}).content.decode()
    assert re.search(r"leadcrm\.lead #1\s", second)
    assert "Older →" not in second
    assert "← Newer" in second
