"""Every new endpoint, as anonymous, salesperson and manager: who may do what."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from chatbot.models import FaqEntry, Site
from scoring.models import Rule
from tests.factories import make_follow_up, make_interaction, make_lead, make_segment

pytestmark = pytest.mark.django_db

SOON = (timezone.now() + timedelta(days=2)).isoformat()


@pytest.fixture
def rows(salesperson) -> dict[str, Any]:
    lead = make_lead(owner=salesperson)
    return {
        "lead": lead,
        "interaction": make_interaction(lead),
        "segment": make_segment(),
        "follow_up": make_follow_up(lead, assigned_to=salesperson),
        "rule": Rule.objects.create(
            name="Director",
            category="fit",
            points=10,
            reason="Decision maker",
            field="job_title",
            operator="contains",
            value="director",
        ),
        "site": (site := Site.objects.create(name="Shop", allowed_origins=["https://shop.example"])),
        "faq": FaqEntry.objects.create(site=site, question="Opening hours?", answer="9 to 5"),
    }


# (method, path, body, salesperson's status, manager's status)
CASES: list[tuple[str, str, Any, int, int]] = [
    ("get", "/api/v1/interactions/", None, 200, 200),
    ("get", "/api/v1/interactions/{interaction}/", None, 200, 200),
    ("get", "/api/v1/segments/", None, 200, 200),
    ("get", "/api/v1/segments/{segment}/", None, 200, 200),
    ("get", "/api/v1/segments/{segment}/members/", None, 200, 200),
    ("post", "/api/v1/segments/", {"name": "New list"}, 403, 201),
    ("patch", "/api/v1/segments/{segment}/", {"description": "x"}, 403, 200),
    ("put", "/api/v1/segments/{segment}/", {"name": "Renamed"}, 403, 200),
    ("post", "/api/v1/segments/{segment}/members/", {"add": ["{lead}"]}, 403, 200),
    ("post", "/api/v1/segments/{segment}/refresh/", None, 403, 400),  # a static one: 400 says why
    ("delete", "/api/v1/segments/{segment}/", None, 403, 204),
    ("get", "/api/v1/follow-ups/", None, 200, 200),
    ("get", "/api/v1/follow-ups/{follow_up}/", None, 200, 200),
    ("post", "/api/v1/follow-ups/", {"lead": "{lead}", "due_at": SOON}, 201, 201),
    ("patch", "/api/v1/follow-ups/{follow_up}/", {"note": "Call at 10"}, 200, 200),
    ("post", "/api/v1/follow-ups/{follow_up}/complete/", None, 200, 200),
    ("delete", "/api/v1/follow-ups/{follow_up}/", None, 204, 204),
    ("get", "/api/v1/rules/", None, 200, 200),
    ("get", "/api/v1/rules/{rule}/", None, 200, 200),
    (
        "post",
        "/api/v1/rules/",
        {
            "name": "Retail",
            "category": "fit",
            "points": 5,
            "reason": "Retail",
            "field": "industry",
            "operator": "equals",
            "value": "Retail",
        },
        403,
        201,
    ),
    ("patch", "/api/v1/rules/{rule}/", {"points": 12}, 403, 200),
    ("delete", "/api/v1/rules/{rule}/", None, 403, 204),
    ("get", "/api/v1/sites/", None, 403, 200),
    ("get", "/api/v1/sites/{site}/", None, 403, 200),
    ("post", "/api/v1/sites/", {"name": "Blog"}, 403, 201),
    ("patch", "/api/v1/sites/{site}/", {"brand_color": "#000000"}, 403, 200),
    ("post", "/api/v1/sites/{site}/rotate-secret/", None, 403, 200),
    ("delete", "/api/v1/sites/{site}/", None, 403, 204),
    ("get", "/api/v1/faq-entries/", None, 403, 200),
    ("get", "/api/v1/faq-entries/{faq}/", None, 403, 200),
    ("post", "/api/v1/faq-entries/", {"site": "{site}", "question": "Parking?", "answer": "Yes"}, 403, 201),
    ("patch", "/api/v1/faq-entries/{faq}/", {"active": False}, 403, 200),
    ("delete", "/api/v1/faq-entries/{faq}/", None, 403, 204),
    ("get", "/api/v1/sync/leads/", None, 200, 200),
    ("get", "/api/v1/sync/interactions/", None, 200, 200),
    ("get", "/api/v1/sync/follow-ups/", None, 200, 200),
    ("get", "/api/v1/sync/segments/", None, 200, 200),
]


def fill(value: Any, rows: dict[str, Any]) -> Any:
    """Put the ids of `rows` into a path or body template."""
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and "/" not in value:
        return rows[value[1:-1]].pk
    if isinstance(value, str):
        return value.format(**{name: row.pk for name, row in rows.items()})
    if isinstance(value, dict):
        return {k: fill(v, rows) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, rows) for v in value]
    return value


def ids(case: tuple) -> str:
    return f"{case[0].upper()} {case[1]}"


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_anonymous_is_refused(case, as_user, rows) -> None:
    method, path, body, _, _ = case
    response = getattr(as_user(), method)(fill(path, rows), fill(body, rows), format="json")
    assert response.status_code == 401
    assert "detail" in response.json()


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_salesperson(case, as_user, rows, salesperson) -> None:
    method, path, body, expected, _ = case
    response = getattr(as_user(salesperson), method)(fill(path, rows), fill(body, rows), format="json")
    assert response.status_code == expected, response.content
    if expected == 403:
        assert response.json()["detail"]


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_manager(case, as_user, rows, manager) -> None:
    method, path, body, _, expected = case
    response = getattr(as_user(manager), method)(fill(path, rows), fill(body, rows), format="json")
    assert response.status_code == expected, response.content


def test_a_refused_write_changes_nothing(as_user, rows, salesperson) -> None:
    client = as_user(salesperson)
    client.patch(f"/api/v1/rules/{rows['rule'].pk}/", {"points": 99}, format="json")
    client.patch(f"/api/v1/segments/{rows['segment'].pk}/", {"name": "Mine now"}, format="json")
    client.delete(f"/api/v1/sites/{rows['site'].pk}/")
    assert Rule.objects.get(pk=rows["rule"].pk).points == 10
    assert rows["segment"].__class__.objects.get(pk=rows["segment"].pk).name == rows["segment"].name
    assert Site.objects.filter(pk=rows["site"].pk).exists()


def test_every_operation_documents_its_refusals(client) -> None:
    schema = client.get("/api/v1/schema/?format=json").json()
    new = (
        "/api/v1/interactions",
        "/api/v1/segments",
        "/api/v1/follow-ups",
        "/api/v1/rules",
        "/api/v1/sites",
        "/api/v1/faq-entries",
        "/api/v1/sync",
    )
    checked = 0
    for path, operations in schema["paths"].items():
        if not path.startswith(new):
            continue
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "403", "429"} <= codes, (method, path)
            if "{" in path:
                assert "404" in codes, (method, path)
            if method in ("post", "put", "patch") or any(
                p["in"] == "query" for p in operation.get("parameters", [])
            ):
                assert "400" in codes, (method, path)
            checked += 1
    assert checked >= 35
    # The chat widget's public endpoints stay in the schema.
    assert any(path.startswith("/api/v1/chat/sites/") for path in schema["paths"])
