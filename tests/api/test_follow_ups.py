"""Follow-ups through the API: the lead's visibility and change rules, service validation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from leadcrm.models import FollowUp
from tests.factories import make_follow_up, make_lead

pytestmark = pytest.mark.django_db


def soon(days: int = 1) -> str:
    return (timezone.now() + timedelta(days=days)).isoformat()


def test_a_salesperson_lists_follow_ups_of_leads_they_may_see_only(
    as_user, salesperson, other_salesperson
) -> None:
    mine = make_follow_up(make_lead(owner=salesperson))
    free = make_follow_up(make_lead())
    theirs = make_follow_up(make_lead(owner=other_salesperson))
    client = as_user(salesperson)
    assert {r["id"] for r in client.get("/api/v1/follow-ups/").json()["results"]} == {mine.pk, free.pk}
    assert client.get(f"/api/v1/follow-ups/{theirs.pk}/").status_code == 404
    assert client.patch(f"/api/v1/follow-ups/{theirs.pk}/", {"note": "x"}, format="json").status_code == 404


def test_scheduling_on_a_hidden_or_unknown_lead_gives_the_same_answer(
    as_user, salesperson, other_salesperson
) -> None:
    client = as_user(salesperson)
    hidden = make_lead(owner=other_salesperson)
    answers = [
        client.post("/api/v1/follow-ups/", {"lead": lead_id, "due_at": soon()}, format="json")
        for lead_id in (hidden.pk, 987654321)
    ]
    assert [a.status_code for a in answers] == [400, 400]
    assert answers[0].json()["lead"][0].replace(str(hidden.pk), "N") == answers[1].json()["lead"][0].replace(
        "987654321", "N"
    )
    assert not FollowUp.objects.exists()


def test_a_salesperson_claims_a_lead_before_scheduling_on_it(as_user, salesperson) -> None:
    response = as_user(salesperson).post(
        "/api/v1/follow-ups/", {"lead": make_lead().pk, "due_at": soon()}, format="json"
    )
    assert response.status_code == 403
    assert "Claim" in response.json()["detail"]


def test_scheduling_goes_through_the_service(as_user, salesperson, other_salesperson) -> None:
    lead = make_lead(owner=salesperson)
    client = as_user(salesperson)
    past = client.post("/api/v1/follow-ups/", {"lead": lead.pk, "due_at": soon(-1)}, format="json")
    assert past.status_code == 400
    assert "future" in str(past.json()["due_at"])
    away = client.post(
        "/api/v1/follow-ups/",
        {"lead": lead.pk, "due_at": soon(), "assigned_to": other_salesperson.pk},
        format="json",
    )
    assert away.status_code == 400
    assert "manager" in str(away.json()["assigned_to"])
    ok = client.post(
        "/api/v1/follow-ups/", {"lead": lead.pk, "due_at": soon(), "note": " Call "}, format="json"
    )
    assert ok.status_code == 201, ok.content
    follow_up = FollowUp.objects.get(pk=ok.json()["id"])
    assert (follow_up.note, follow_up.assigned_to, follow_up.created_by) == ("Call", salesperson, salesperson)


def test_rescheduling_completing_and_the_done_rule(as_user, salesperson) -> None:
    follow_up = make_follow_up(make_lead(owner=salesperson))
    client = as_user(salesperson)
    later = timezone.now() + timedelta(days=5)
    response = client.patch(
        f"/api/v1/follow-ups/{follow_up.pk}/", {"due_at": later.isoformat()}, format="json"
    )
    assert response.status_code == 200
    follow_up.refresh_from_db()
    assert abs(follow_up.due_at - later) < timedelta(seconds=1)
    before = follow_up.updated_at
    done = client.post(f"/api/v1/follow-ups/{follow_up.pk}/complete/")
    assert done.status_code == 200
    assert done.json()["done_at"]
    follow_up.refresh_from_db()
    assert follow_up.updated_at > before  # completing is a change a syncing system must see
    again = client.patch(f"/api/v1/follow-ups/{follow_up.pk}/", {"note": "more"}, format="json")
    assert again.status_code == 400
    assert "done" in str(again.json())


def test_the_person_assigned_may_complete_but_not_change_an_unclaimed_leads_follow_up(
    as_user, salesperson
) -> None:
    follow_up = make_follow_up(make_lead(), assigned_to=salesperson)
    client = as_user(salesperson)
    assert (
        client.patch(f"/api/v1/follow-ups/{follow_up.pk}/", {"note": "x"}, format="json").status_code == 403
    )
    assert client.delete(f"/api/v1/follow-ups/{follow_up.pk}/").status_code == 403
    assert client.post(f"/api/v1/follow-ups/{follow_up.pk}/complete/").status_code == 200


def test_a_follow_up_stays_on_its_lead_and_unknown_fields_are_named(as_user, manager) -> None:
    follow_up = make_follow_up(make_lead())
    client = as_user(manager)
    moved = client.patch(f"/api/v1/follow-ups/{follow_up.pk}/", {"lead": make_lead().pk}, format="json")
    assert moved.status_code == 400
    assert "lead" in moved.json()
    unknown = client.patch(f"/api/v1/follow-ups/{follow_up.pk}/", {"done_at": soon()}, format="json")
    assert unknown.status_code == 400
    assert "done_at" in unknown.json()


def test_filters(as_user, manager, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    open_one = make_follow_up(lead, assigned_to=salesperson)
    done = make_follow_up(lead, assigned_to=manager, done_at=timezone.now())
    client = as_user(manager)
    ids = lambda query: [r["id"] for r in client.get(f"/api/v1/follow-ups/?{query}").json()["results"]]  # noqa: E731
    assert ids("done=false") == [open_one.pk]
    assert ids("done=true") == [done.pk]
    assert ids("mine=true") == [done.pk]
    assert ids(f"lead={lead.pk}&assigned_to={salesperson.pk}") == [open_one.pk]
    assert client.get("/api/v1/follow-ups/?updated_after=not-a-date").status_code == 400
