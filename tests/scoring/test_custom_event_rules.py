"""An engagement rule over custom_event with pattern "signup" counts signups: the pattern matches
payload "name" on the event path (one lead), the full recompute and the rule's match count."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from leadcrm.models import InteractionKind, Lead
from scoring import selectors, services
from scoring.models import Rule
from tests.factories import make_interaction, make_lead
from tests.scoring.helpers import make_rule

SIGNUPS = {
    "name": "Signed up",
    "category": "engagement",
    "points": 25,
    "reason": "Signed up on the website",
    "kinds": ["custom_event"],
    "pattern": "signup",
}


def _leads() -> tuple[Lead, Lead, Lead]:
    signed_up, other_event, nothing = make_lead(), make_lead(), make_lead()
    make_interaction(signed_up, "custom_event", payload={"name": "signup", "page": "https://shop.example/"})
    # Another custom event, fired on the signup page: the pattern is about the name, not the page.
    make_interaction(
        other_event, "custom_event", payload={"name": "newsletter", "page": "https://shop.example/signup"}
    )
    make_interaction(nothing, "page_view", payload={"url": "https://shop.example/signup"})  # not the kind
    return signed_up, other_event, nothing


def _scores(*leads: Lead) -> list[float]:
    return [Lead.objects.get(pk=lead.pk).rule_score for lead in leads]


@pytest.mark.django_db
def test_a_manager_writes_the_rule_with_the_kinds_slug(manager) -> None:
    client = APIClient()
    client.force_authenticate(manager)
    response = client.post("/api/v1/rules/", SIGNUPS, format="json")
    assert response.status_code == 201, response.content
    assert Rule.objects.get(pk=response.json()["id"]).kinds == [InteractionKind.CUSTOM_EVENT]
    assert response.json()["kinds"] == ["custom_event"]


@pytest.mark.django_db
def test_the_event_path_scores_a_lead_with_a_signup_and_not_the_others() -> None:
    rule = make_rule(name="Signed up", kinds=[int(InteractionKind.CUSTOM_EVENT)], pattern="signup", points=25)
    leads = _leads()

    for lead in leads:
        services.rescore_leads([lead.pk])  # one lead at a time, as the event task does

    assert _scores(*leads) == [25, 0, 0]
    preview = selectors.rule_preview(rule, leads[0])
    assert (preview.points, preview.count) == (25, 1)


@pytest.mark.django_db(transaction=True)
def test_the_full_recompute_scores_a_lead_with_a_signup_and_not_the_others() -> None:
    """Outside a transaction on PostgreSQL: the streamed recompute over a temp aggregate table."""
    rule = make_rule(name="Signed up", kinds=[int(InteractionKind.CUSTOM_EVENT)], pattern="SignUp", points=25)
    leads = _leads()

    run = services.recompute_all(chunk_size=2)

    assert run.status == "done"
    assert _scores(*leads) == [25, 0, 0]
    assert selectors.rule_match_count(rule) == 1
