"""The scoring admin: managers write rules; bad input is refused with a clear message."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from leadcrm.models import Lead
from scoring.models import RecomputeRun, Rule, RuleChange
from tests.factories import make_interaction, make_lead, make_manager, make_user
from tests.scoring.helpers import make_rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def boss_client() -> Client:
    boss = make_manager("chief", is_staff=True)
    client = Client()
    client.force_login(boss)
    return client


def rule_form(**fields: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "Director title",
        "category": "fit",
        "points": "10",
        "reason": "Director-level title",
        "active": "on",
        "field": "job_title",
        "operator": "contains",
        "value": "director",
        "pattern": "",
        "window_days": "",
        "threshold": "",
        "cap": "",
        "half_life_days": "",
        "detector": "",
        "changes-TOTAL_FORMS": "0",
        "changes-INITIAL_FORMS": "0",
        "changes-MIN_NUM_FORMS": "0",
        "changes-MAX_NUM_FORMS": "0",
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    ("fields", "field_name", "message"),
    [
        ({"field": "jobtitle"}, "field", "Unknown field 'jobtitle'"),
        ({"operator": "gt", "value": "5"}, "operator", "job_title is a text field"),
        (
            {"field": "employee_count", "operator": "between", "value": "500, 50"},
            "value",
            "must not be larger",
        ),
        ({"field": "employee_count", "operator": "gt", "value": "many"}, "value", "'many' is not a number"),
        (
            {
                "category": "engagement",
                "field": "",
                "operator": "",
                "value": "",
                "kinds": ["1"],
                "window_days": "-3",
            },
            "window_days",
            "A window of -3 days makes no sense",
        ),
        ({"category": "engagement", "field": "", "operator": "", "value": ""}, "kinds", "at least one"),
        (
            {"category": "engagement", "field": "", "operator": "", "kinds": ["1"], "half_life_days": "0"},
            "half_life_days",
            "more than 0",
        ),
        ({"category": "negative", "field": "", "operator": "", "value": ""}, "detector", "Choose which spam"),
        ({"reason": "Visited {pages} pages"}, "reason", "Only {count} and {points}"),
    ],
)
def test_bad_rules_are_refused_with_a_clear_message(
    boss_client: Client, fields: dict, field_name: str, message: str
) -> None:
    response = boss_client.post(reverse("admin:scoring_rule_add"), rule_form(**fields))
    assert response.status_code == 200  # the form again, not a 500
    errors = response.context["adminform"].form.errors
    assert field_name in errors
    assert message in " ".join(errors[field_name])
    assert not Rule.objects.exists()
    assert not RecomputeRun.objects.exists()


def test_creating_a_rule_in_the_admin_records_history_and_recomputes(
    boss_client: Client, django_capture_on_commit_callbacks
) -> None:
    lead = make_lead(job_title="Sales Director")
    with django_capture_on_commit_callbacks(execute=True):
        response = boss_client.post(reverse("admin:scoring_rule_add"), rule_form())
    assert response.status_code == 302
    rule = Rule.objects.get()
    change = RuleChange.objects.get()
    assert (change.action, change.changed_by.username, change.after["value"]) == (
        "created",
        "chief",
        "director",
    )
    assert Lead.objects.get(pk=lead.pk).rule_score == 10
    assert RecomputeRun.objects.get().status == "done"

    with django_capture_on_commit_callbacks(execute=True):
        response = boss_client.post(
            reverse("admin:scoring_rule_change", args=[rule.pk]), rule_form(points="12")
        )
    assert response.status_code == 302
    assert Lead.objects.get(pk=lead.pk).rule_score == 12
    assert RuleChange.objects.filter(action="updated").get().before["points"] == 10


def test_engagement_rule_with_kind_checkboxes(boss_client: Client) -> None:
    response = boss_client.post(
        reverse("admin:scoring_rule_add"),
        rule_form(
            name="Pricing",
            category="engagement",
            field="",
            operator="",
            value="",
            kinds=["1", "2"],
            pattern="/pricing",
            window_days="30",
            cap="15",
            reason="Pricing {count}×",
        ),
    )
    assert response.status_code == 302
    assert Rule.objects.get().kinds == [1, 2]


def test_rule_pages_show_progress_matches_and_a_preview(boss_client: Client) -> None:
    rule = make_rule(name="Views", points=4, reason="Viewed {count} pages")
    lead = make_lead(first_name="Grace", last_name="Hopper", email="grace@example.com")
    make_lead()
    make_interaction(lead, "page_view")
    make_interaction(lead, "page_view")
    RecomputeRun.objects.create(
        reason="Rule “Views” changed", status="running", total_leads=200, done_leads=50
    )

    page = boss_client.get(reverse("admin:scoring_rule_changelist"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'max="100" value="25"' in html
    assert "every 1s" in html  # polls while the run is active

    change = boss_client.get(reverse("admin:scoring_rule_change", args=[rule.pk])).content.decode()
    assert reverse("scoring:rule_matches", args=[rule.pk]) in change

    matches = boss_client.get(reverse("scoring:rule_matches", args=[rule.pk])).content.decode()
    assert "<strong>1</strong> of 2 leads match" in matches

    for query in (str(lead.pk), "grace@example.com", "Grace Hopper"):
        preview = boss_client.get(reverse("scoring:rule_preview", args=[rule.pk]), {"lead": query})
        assert "+8 points" in preview.content.decode()
        assert "Viewed 2 pages" in preview.content.decode()
    missing = boss_client.get(reverse("scoring:rule_preview", args=[rule.pk]), {"lead": "nobody@example.com"})
    assert "No lead matches" in missing.content.decode()


def test_recompute_button_queues_a_run(boss_client: Client, django_capture_on_commit_callbacks) -> None:
    make_rule(points=3)
    lead = make_lead()
    make_interaction(lead, "page_view")
    with django_capture_on_commit_callbacks(execute=True):
        response = boss_client.post(reverse("scoring:recompute_now"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert RecomputeRun.objects.get().status == "done"
    assert Lead.objects.get(pk=lead.pk).rule_score == 3
    assert "Last recompute" in boss_client.get(reverse("scoring:recompute_progress")).content.decode()


def test_salespeople_cannot_reach_scoring_endpoints() -> None:
    client = Client()
    client.force_login(make_user("seller", is_staff=True))
    rule = make_rule()
    assert client.get(reverse("scoring:recompute_progress")).status_code == 403
    assert client.get(reverse("scoring:rule_matches", args=[rule.pk])).status_code == 403


def test_rule_names_are_unique_and_points_bounded() -> None:
    from django.core.exceptions import ValidationError

    from scoring.models import MAX_POINTS, Rule
    from tests.scoring.helpers import make_rule

    make_rule(name="Pricing page visits")
    with pytest.raises(ValidationError, match="A rule with this name exists"):
        Rule(name="Pricing page visits", category="engagement", kinds=[1], points=5, reason="x").full_clean()
    for points in (MAX_POINTS + 1, 2_147_483_647, -MAX_POINTS - 1):
        with pytest.raises(ValidationError, match="points"):
            Rule(
                name=f"Big {points}", category="engagement", kinds=[1], points=points, reason="x"
            ).full_clean()
