"""The sync feed: a first full pass, then passes from updated_after, with a keyset cursor.

Nothing is missed and nothing is served twice in a pass, even while rows change under it or
share one timestamp (a bulk update stamps many rows with the same time)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from leadcrm import services
from leadcrm.models import Lead
from tests.factories import make_follow_up, make_interaction, make_lead, make_segment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_lag(settings) -> None:
    settings.API_SYNC_LAG_SECONDS = 0  # rows made a moment ago belong to this pass


def read_pass(client, url: str) -> tuple[list[dict[str, Any]], str]:
    """Every row of one pass, page by page; and where the next pass starts."""
    rows: list[dict[str, Any]] = []
    while url:
        page = client.get(url).json()
        rows += page["results"]
        url, next_pass = page["next"], page["next_pass"]
    return rows, next_pass


def test_a_full_pass_then_only_the_changes(as_user, manager) -> None:
    leads = [make_lead() for _ in range(7)]
    client = as_user(manager)
    rows, next_pass = read_pass(client, "/api/v1/sync/leads/?page_size=3")
    assert sorted(r["id"] for r in rows) == sorted(lead.pk for lead in leads)
    assert len(rows) == len({r["id"] for r in rows})

    services.update_lead(lead=leads[2], city="Lisbon")
    added = make_lead()
    rows, _ = read_pass(client, next_pass)
    assert {r["id"]: r["city"] for r in rows} == {leads[2].pk: "Lisbon", added.pk: ""}


def test_rows_changing_during_a_pass_are_neither_missed_nor_served_twice(as_user, manager) -> None:
    leads = [make_lead() for _ in range(10)]
    client = as_user(manager)
    page = client.get("/api/v1/sync/leads/?page_size=4").json()
    served = [r["id"] for r in page["results"]]
    # While the client works: one row it has, one it has not reached yet, a new one, one deleted.
    services.update_lead(lead=Lead.objects.get(pk=served[0]), city="Porto")
    pending = next(lead for lead in reversed(leads) if lead.pk not in served)
    services.update_lead(lead=pending, city="Faro")
    new = make_lead()
    url, next_pass = page["next"], page["next_pass"]
    while url:
        page = client.get(url).json()
        served += [r["id"] for r in page["results"]]
        url = page["next"]
    assert len(served) == len(set(served))  # nothing twice in the pass
    # Only the changed pending row waits for the next pass (its change is after the pass began).
    assert set(served) == {lead.pk for lead in leads} - {pending.pk}
    rows, _ = read_pass(client, next_pass)
    assert {r["id"]: r["city"] for r in rows} == {served[0]: "Porto", pending.pk: "Faro", new.pk: ""}


def test_rows_sharing_one_timestamp_page_without_gaps(as_user, manager) -> None:
    leads = [make_lead() for _ in range(9)]
    same = timezone.now() - timedelta(minutes=1)
    Lead.objects.update(updated_at=same)
    rows, _ = read_pass(as_user(manager), "/api/v1/sync/leads/?page_size=2")
    assert [r["id"] for r in rows] == sorted(lead.pk for lead in leads)


def test_a_write_still_committing_waits_for_the_next_pass(as_user, manager, settings) -> None:
    settings.API_SYNC_LAG_SECONDS = 60
    old, fresh = make_lead(), make_lead()
    Lead.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    page = as_user(manager).get("/api/v1/sync/leads/").json()
    assert [r["id"] for r in page["results"]] == [old.pk]
    assert fresh.pk not in [r["id"] for r in page["results"]]
    assert "updated_after=" in page["next_pass"]


def test_a_salesperson_syncs_only_the_leads_they_may_see(as_user, salesperson, other_salesperson) -> None:
    mine, free = make_lead(owner=salesperson), make_lead()
    make_lead(owner=other_salesperson)
    rows, _ = read_pass(as_user(salesperson), "/api/v1/sync/leads/")
    assert {r["id"] for r in rows} == {mine.pk, free.pk}


def test_a_made_up_or_foreign_cursor_is_a_400(as_user, manager) -> None:
    make_lead(), make_lead()
    client = as_user(manager)
    assert client.get("/api/v1/sync/leads/?cursor=abc").status_code == 400
    leads_cursor = client.get("/api/v1/sync/leads/?page_size=1").json()["next"].split("cursor=")[1]
    foreign = client.get(f"/api/v1/sync/follow-ups/?cursor={leads_cursor}")
    assert foreign.status_code == 400
    assert "cursor" in foreign.json()
    assert client.get("/api/v1/sync/leads/?updated_after=yesterday").status_code == 400
    assert client.get("/api/v1/sync/leads/?page_size=5000").status_code == 400


def test_interactions_follow_ups_and_segments_have_feeds_too(as_user, manager) -> None:
    lead = make_lead()
    interaction = make_interaction(lead)
    follow_up = make_follow_up(lead)
    segment = make_segment()
    client = as_user(manager)
    assert [r["id"] for r in read_pass(client, "/api/v1/sync/interactions/")[0]] == [interaction.pk]
    rows, next_pass = read_pass(client, "/api/v1/sync/follow-ups/")
    assert [r["id"] for r in rows] == [follow_up.pk]
    services.complete_follow_up(follow_up=follow_up)
    assert [r["done_at"] is not None for r in read_pass(client, next_pass)[0]] == [True]
    rows, next_pass = read_pass(client, "/api/v1/sync/segments/")
    assert [r["id"] for r in rows] == [segment.pk]
    services.change_members(segment=segment, add=[lead.pk])
    assert [r["member_count"] for r in read_pass(client, next_pass)[0]] == [1]
