"""Scoring rules through the API: read for all roles, write for managers, a write queues a recompute."""

from __future__ import annotations

import pytest

from scoring.models import RecomputeRun, Rule, RuleChange

pytestmark = pytest.mark.django_db

ENGAGEMENT = {
    "name": "Pricing page",
    "category": "engagement",
    "points": 5,
    "reason": "Visited pricing {count}×",
    "kinds": ["page_view"],
    "pattern": "/pricing",
    "window_days": 30,
    "cap": 20,
}


def test_a_managers_rule_is_recorded_and_queues_one_full_recompute(
    as_user, manager, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = as_user(manager).post("/api/v1/rules/", ENGAGEMENT, format="json")
    assert response.status_code == 201, response.content
    rule = Rule.objects.get(pk=response.json()["id"])
    assert rule.kinds == [1]  # stored as the kind's number, read back as its name
    assert response.json()["kinds"] == ["page_view"]
    assert response.json()["recompute_status"] == "queued"
    change = RuleChange.objects.get(rule=rule)
    assert (change.action, change.changed_by) == ("created", manager)
    run = RecomputeRun.objects.get()
    assert run.status == "queued"
    assert "Pricing page" in run.reason
    assert run.requested_by == manager
    assert len(callbacks) == 1  # the recompute task is sent once the rule is committed


def test_a_change_and_a_delete_queue_a_recompute_too(as_user, manager) -> None:
    rule = Rule.objects.create(
        name="Director",
        category="fit",
        points=10,
        reason="r",
        field="job_title",
        operator="contains",
        value="director",
    )
    client = as_user(manager)
    assert client.patch(f"/api/v1/rules/{rule.pk}/", {"points": 15}, format="json").status_code == 200
    assert RuleChange.objects.filter(rule=rule, action="updated").exists()
    RecomputeRun.objects.update(status="done")
    assert client.delete(f"/api/v1/rules/{rule.pk}/").status_code == 204
    assert RuleChange.objects.filter(rule_name="Director", action="deleted").exists()
    assert RecomputeRun.objects.filter(status="queued").count() == 1


def test_a_salesperson_reads_rules_but_cannot_write_them(as_user, salesperson) -> None:
    rule = Rule.objects.create(
        name="Retail",
        category="fit",
        points=5,
        reason="r",
        field="industry",
        operator="equals",
        value="Retail",
    )
    client = as_user(salesperson)
    assert [r["name"] for r in client.get("/api/v1/rules/").json()["results"]] == ["Retail"]
    assert client.post("/api/v1/rules/", ENGAGEMENT, format="json").status_code == 403
    assert client.patch(f"/api/v1/rules/{rule.pk}/", {"points": 1}, format="json").status_code == 403
    assert not RecomputeRun.objects.exists()
    assert not RuleChange.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"category": "fit", "field": "salary", "operator": "gt", "value": "5"}, "field"),
        ({"category": "fit", "field": "industry", "operator": "gt", "value": "5"}, "operator"),
        ({"kinds": []}, "kinds"),
        ({"kinds": ["telepathy"]}, "kinds"),
        ({"points": 100_000}, "points"),
        ({"reason": "{secret}"}, "reason"),
        ({"half_life_days": 0}, "half_life_days"),
        ({"window_days": 0}, "window_days"),
        ({"last_error": "x"}, "last_error"),
    ],
)
def test_a_rule_that_cannot_be_evaluated_is_a_400_and_nothing_is_queued(
    as_user, manager, change, field
) -> None:
    response = as_user(manager).post("/api/v1/rules/", {**ENGAGEMENT, **change}, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not Rule.objects.exists()
    assert not RecomputeRun.objects.exists()
