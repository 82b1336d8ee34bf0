"""Hole 7: a refused email must not tell a salesperson whose lead has it.

Before the fix, creating (or editing a lead to) an email that a colleague's lead has answered
"A lead with this email already exists.", while the salesperson's own list showed no such lead: so
the email belonged to another salesperson. Now a salesperson gets the same words whoever has the
email (they, nobody or a colleague), naming no lead and no owner; a manager, who sees every lead
anyway, is told which lead has it.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from leadcrm.api import EMAIL_UNAVAILABLE
from leadcrm.models import Lead
from tests.factories import make_lead, make_manager, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def leads() -> dict[str, Any]:
    alice, bob = make_user("alice"), make_user("bob")
    return {
        "bob": bob,
        "alice": alice,
        "alices": make_lead(owner=alice, email="ceo@acme.example", first_name="Carla"),
        "unassigned": make_lead(email="buyer@acme.example"),
        "bobs": make_lead(owner=bob, email="cto@acme.example"),
        "bobs_other": make_lead(owner=bob, email="ops@acme.example"),
    }


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def leaked(response_text: str, leads: dict[str, Any]) -> list[str]:
    """Whatever in an answer would tell whose lead has the email, or which lead it is."""
    clues = ["exist", "alice", "carla", "owner", "another", "someone", "colleague"]
    clues += [f"#{leads[name].pk}" for name in ("alices", "unassigned", "bobs")]
    return [clue for clue in clues if clue in response_text.lower()]


def test_create_answers_the_same_whoever_owns_the_email(leads: dict[str, Any]) -> None:
    client = client_for(leads["bob"])
    answers = {}
    for name in ("alices", "unassigned", "bobs"):
        email = leads[name].email.upper()  # case does not matter for the check either
        response = client.post("/api/v1/leads/", {"first_name": "New", "email": email}, format="json")
        answers[name] = (response.status_code, response.json())
        assert leaked(response.content.decode(), leads) == [], name

    assert answers["alices"] == answers["unassigned"] == answers["bobs"]
    assert answers["alices"] == (400, {"email": [EMAIL_UNAVAILABLE]})
    assert Lead.objects.count() == 4  # nothing was created


def test_editing_own_lead_to_a_taken_email_answers_the_same_whoever_owns_it(leads: dict[str, Any]) -> None:
    client = client_for(leads["bob"])
    url = f"/api/v1/leads/{leads['bobs_other'].pk}/"
    answers = {
        name: client.patch(url, {"email": leads[name].email}, format="json")
        for name in ("alices", "unassigned", "bobs")
    }
    bodies = {name: (r.status_code, r.json()) for name, r in answers.items()}
    assert bodies["alices"] == bodies["unassigned"] == bodies["bobs"] == (400, {"email": [EMAIL_UNAVAILABLE]})
    for response in answers.values():
        assert leaked(response.content.decode(), leads) == []
    leads["bobs_other"].refresh_from_db()
    assert leads["bobs_other"].email == "ops@acme.example"


def test_a_free_email_and_keeping_ones_own_email_still_work(leads: dict[str, Any]) -> None:
    client = client_for(leads["bob"])
    created = client.post("/api/v1/leads/", {"email": " New@Acme.example "}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["email"] == "new@acme.example"
    url = f"/api/v1/leads/{leads['bobs'].pk}/"
    same = client.patch(url, {"email": "CTO@acme.example", "first_name": "Tom"}, format="json")
    assert same.status_code == 200, same.content


def test_a_manager_who_sees_every_lead_is_told_which_one(leads: dict[str, Any]) -> None:
    response = client_for(make_manager()).post("/api/v1/leads/", {"email": "ceo@acme.example"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"email": [f"Lead #{leads['alices'].pk} already has this email."]}


def test_another_salespersons_lead_stays_invisible_by_id(leads: dict[str, Any]) -> None:
    # The id route answers the same 404 as an id that does not exist: no existence leak there.
    client = client_for(leads["bob"])
    theirs = client.patch(f"/api/v1/leads/{leads['alices'].pk}/", {"first_name": "X"}, format="json")
    missing = client.patch("/api/v1/leads/999999999/", {"first_name": "X"}, format="json")
    assert (
        (theirs.status_code, theirs.json())
        == (missing.status_code, missing.json())
        == (
            404,
            {"detail": "No Lead matches the given query."},
        )
    )
