"""Segments and memberships through the API: managers write, salespeople read what they may see."""

from __future__ import annotations

import pytest

from leadcrm.models import Segment, SegmentMembership
from leadcrm.services import add_to_segment
from tests.factories import make_lead, make_segment

pytestmark = pytest.mark.django_db


def test_a_dynamic_segment_is_filled_from_its_criteria_at_once(as_user, manager) -> None:
    retail = make_lead(industry="Retail", employee_count=80)
    make_lead(industry="Retail", employee_count=5)
    make_lead(industry="Software", employee_count=500)
    response = as_user(manager).post(
        "/api/v1/segments/",
        {
            "name": "Big retail",
            "kind": "dynamic",
            "criteria": {"industry__iexact": "retail", "employee_count__gte": 50},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    segment = Segment.objects.get(pk=response.json()["id"])
    assert segment.created_by == manager
    assert list(segment.memberships.values_list("lead_id", flat=True)) == [retail.pk]
    assert response.json()["member_count"] == 1


@pytest.mark.parametrize(
    ("criteria", "words"),
    [
        ({"salary__gte": 5}, "Unknown lead field"),
        ({"customer": "x"}, "Unknown lead field"),
        ({"custom__a__b": "x"}, "custom__name"),
        ({"industry": {"nested": 1}}, "plain values"),
        ({"industry__in": [1, 2]}, "compares text"),
        ({"employee_count__gte": 10**12}, "out of range"),
        ({"employee_count__gte": "many"}, "not a number"),
        ({"industry__isnull": "yes"}, "true or false"),
        ({"industry": "a\u0000b"}, "NUL"),
        ({}, "criteria"),
    ],
)
def test_criteria_the_database_could_not_run_are_a_400(as_user, manager, criteria, words) -> None:
    response = as_user(manager).post(
        "/api/v1/segments/", {"name": "Bad", "kind": "dynamic", "criteria": criteria}, format="json"
    )
    assert response.status_code == 400
    assert words in str(response.json()["criteria"])
    assert not Segment.objects.filter(name="Bad").exists()


def test_a_static_segment_takes_no_criteria_and_a_duplicate_name_is_refused(as_user, manager) -> None:
    make_segment("Taken")
    client = as_user(manager)
    response = client.post(
        "/api/v1/segments/", {"name": "X", "criteria": {"industry": "Retail"}}, format="json"
    )
    assert response.status_code == 400
    assert "criteria" in response.json()
    response = client.post("/api/v1/segments/", {"name": "Taken"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()


def test_members_are_added_and_removed_and_the_segment_counts_as_changed(as_user, manager) -> None:
    segment = make_segment()
    a, b = make_lead(), make_lead()
    add_to_segment(segment=segment, leads=[a])
    before = Segment.objects.get(pk=segment.pk).updated_at
    response = as_user(manager).post(
        f"/api/v1/segments/{segment.pk}/members/", {"add": [b.pk], "remove": [a.pk]}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {"added": 1, "removed": 1}
    assert list(segment.memberships.values_list("lead_id", flat=True)) == [b.pk]
    assert Segment.objects.get(pk=segment.pk).updated_at > before


def test_unknown_leads_and_dynamic_segments_are_refused_when_adding_members(as_user, manager) -> None:
    client = as_user(manager)
    static = make_segment()
    response = client.post(f"/api/v1/segments/{static.pk}/members/", {"add": [987654321]}, format="json")
    assert response.status_code == 400
    assert "987654321" in str(response.json()["add"])
    dynamic = make_segment(kind="dynamic", criteria={"industry": "Retail"})
    response = client.post(
        f"/api/v1/segments/{dynamic.pk}/members/", {"add": [make_lead().pk]}, format="json"
    )
    assert response.status_code == 400
    assert "criteria" in str(response.json())
    assert not SegmentMembership.objects.exists()


def test_a_salesperson_sees_only_the_members_they_may_see(as_user, salesperson, other_salesperson) -> None:
    segment = make_segment()
    mine, free, theirs = make_lead(owner=salesperson), make_lead(), make_lead(owner=other_salesperson)
    add_to_segment(segment=segment, leads=[mine, free, theirs])
    client = as_user(salesperson)
    members = client.get(f"/api/v1/segments/{segment.pk}/members/").json()
    assert {m["lead"] for m in members["results"]} == {mine.pk, free.pk}
    assert client.get(f"/api/v1/segments/{segment.pk}/").json()["member_count"] == 2


def test_refreshing_a_dynamic_segment_picks_up_new_matches(as_user, manager) -> None:
    segment = make_segment(kind="dynamic", criteria={"industry__iexact": "bakery"})
    lead = make_lead(industry="Bakery")
    response = as_user(manager).post(f"/api/v1/segments/{segment.pk}/refresh/")
    assert response.status_code == 200
    assert response.json() == {"members": 1}
    assert segment.memberships.get().lead_id == lead.pk


def test_updated_after_lists_only_segments_changed_since(as_user, manager) -> None:
    old, new = make_segment(), make_segment()
    Segment.objects.filter(pk=old.pk).update(updated_at="2020-01-01T00:00Z")
    rows = (
        as_user(manager).get("/api/v1/segments/?updated_after=2024-01-01T02:00:00%2B02:00").json()["results"]
    )
    assert [row["id"] for row in rows] == [new.pk]
