"""The interactions list across leads: visibility, filters, updated_after by storage time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from leadcrm.models import Interaction
from tests.factories import make_interaction, make_lead

pytestmark = pytest.mark.django_db


def test_a_salesperson_reads_interactions_of_leads_they_may_see(
    as_user, salesperson, other_salesperson
) -> None:
    mine = make_interaction(make_lead(owner=salesperson))
    free = make_interaction(make_lead())
    theirs = make_interaction(make_lead(owner=other_salesperson))
    client = as_user(salesperson)
    assert {r["id"] for r in client.get("/api/v1/interactions/").json()["results"]} == {mine.pk, free.pk}
    assert client.get(f"/api/v1/interactions/{theirs.pk}/").status_code == 404
    assert client.get("/api/v1/interactions/abc/").status_code == 404


def test_updated_after_is_when_the_event_was_stored_not_when_it_happened(as_user, manager) -> None:
    lead = make_lead()
    now = timezone.now()
    old = make_interaction(lead, occurred_at=now - timedelta(days=30))
    Interaction.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=30))
    late = make_interaction(lead, occurred_at=now - timedelta(days=30))  # arrived today, happened last month
    since = (now - timedelta(days=1)).isoformat()
    rows = as_user(manager).get("/api/v1/interactions/", {"updated_after": since}).json()["results"]
    assert [r["id"] for r in rows] == [late.pk]


def test_kind_and_lead_filters(as_user, manager) -> None:
    a, b = make_lead(), make_lead()
    call = make_interaction(a, "call")
    make_interaction(a, "page_view")
    make_interaction(b, "call")
    client = as_user(manager)
    rows = client.get("/api/v1/interactions/", {"lead": a.pk, "kind": "call"}).json()["results"]
    assert [r["id"] for r in rows] == [call.pk]
    assert rows[0]["kind"] == "call"
    assert client.get("/api/v1/interactions/?kind=telepathy").status_code == 400


def test_updated_after_on_leads_normalises_any_offset(as_user, manager) -> None:
    from leadcrm.models import Lead

    old, new = make_lead(), make_lead()
    Lead.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=3))
    since = (timezone.now() - timedelta(days=1)).astimezone(timezone.get_fixed_timezone(-(16 * 60 + 21)))
    rows = as_user(manager).get("/api/v1/leads/", {"updated_after": since.isoformat()}).json()["results"]
    assert [r["id"] for r in rows] == [new.pk]
