"""The scoring pipeline against the database: aggregates, windows, decay, patterns, writes, snapshots."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from leadcrm.models import Lead
from scoring import defaults, services
from scoring.ml import services as ml_services
from scoring.models import ScoreSnapshot
from tests.factories import make_interaction, make_lead
from tests.scoring.helpers import make_bands, make_rule

pytestmark = pytest.mark.django_db


def score_of(lead: Lead) -> Lead:
    services.rescore_leads([lead.pk])
    lead.refresh_from_db()
    return lead


def test_fit_rules_read_lead_fields_and_custom_attributes() -> None:
    make_rule(
        name="Director", category="fit", field="job_title", operator="contains", value="director", points=10
    )
    make_rule(
        name="Size", category="fit", field="employee_count", operator="between", value="50, 500", points=15
    )
    make_rule(name="Country", category="fit", field="country", operator="in", value="DE, AT, CH", points=5)
    make_rule(name="Pro", category="fit", field="custom.plan", operator="equals", value="pro", points=4)
    make_rule(name="Seats", category="fit", field="custom.seats", operator="gt", value="10", points=3)
    lead = make_lead(
        job_title="Sales Director", employee_count=120, country="DE", custom={"plan": "Pro", "seats": 25}
    )
    other = make_lead(job_title="Intern", employee_count=5000, country="US")

    assert score_of(lead).rule_score == 37
    assert lead.fit_score == 37
    assert lead.engagement_score == 0
    assert score_of(other).rule_score == 0
    assert other.score_breakdown == []


def test_engagement_counts_kinds_in_the_window_with_pattern_cap_and_threshold() -> None:
    now = timezone.now()
    make_rule(
        name="Pricing",
        kinds=[1],
        pattern="/pricing",
        window_days=7,
        points=5,
        cap=10,
        reason="Pricing {count}×",
    )
    make_rule(name="Forms", kinds=[2], window_days=30, threshold=2, points=20, reason="Forms")
    lead = make_lead()
    for days in (0, 1, 6):
        make_interaction(
            lead, "page_view", occurred_at=now - timedelta(days=days), payload={"url": "/Pricing?x=1"}
        )
    make_interaction(
        lead, "page_view", occurred_at=now - timedelta(days=8), payload={"url": "/pricing"}
    )  # outside
    make_interaction(lead, "page_view", occurred_at=now, payload={"url": "/blog"})  # no match
    make_interaction(lead, "form_submit", occurred_at=now - timedelta(days=3))

    lead = score_of(lead)
    assert lead.rule_score == 10  # 3 pricing views × 5 = 15, capped at 10; one form < threshold 2
    assert lead.score_breakdown[0]["reason"] == "Pricing 3×"

    make_interaction(lead, "form_submit", occurred_at=now - timedelta(days=29))
    assert score_of(lead).rule_score == 30  # the threshold is reached: +20 once


def test_email_subject_pattern_and_like_wildcards_are_literal() -> None:
    make_rule(name="Offer", kinds=[5], pattern="50%_off", points=7, reason="Clicked the offer")
    lead = make_lead()
    make_interaction(lead, "email_click", payload={"subject": "Spring: 50%_OFF today"})
    make_interaction(
        lead, "email_click", payload={"subject": "Spring: 50% sale off"}
    )  # % and _ are not wildcards
    assert score_of(lead).rule_score == 7


def test_time_decay_halves_old_activity() -> None:
    now = timezone.now()
    make_rule(name="Views", kinds=[1], points=10, half_life_days=7)
    fresh, old = make_lead(), make_lead()
    make_interaction(fresh, "page_view", occurred_at=now)
    make_interaction(old, "page_view", occurred_at=now - timedelta(days=7))
    assert score_of(fresh).rule_score == 10
    assert score_of(old).rule_score == 5


def test_negative_signals_from_text_and_interactions() -> None:
    make_rule(
        name="Disposable", category="negative", detector="disposable_email", points=-20, reason="Throw-away"
    )
    make_rule(
        name="Captcha",
        category="negative",
        detector="failed_captcha",
        points=-30,
        window_days=30,
        reason="Bot",
    )
    make_rule(name="Bounce", category="negative", detector="unsubscribe_bounce", points=-15, reason="Gone")
    spam = make_lead(email="bot@mailinator.com")
    make_interaction(spam, "captcha_failed")
    make_interaction(spam, "captcha_failed", occurred_at=timezone.now() - timedelta(days=40))
    make_interaction(spam, "unsubscribe")
    spam = score_of(spam)
    assert spam.rule_score == -65
    assert spam.fit_score == -20
    assert spam.engagement_score == -45
    assert sum(e["points"] for e in spam.score_breakdown) == spam.rule_score


def test_grade_and_snapshots_only_when_the_score_changes() -> None:
    make_bands()
    make_rule(name="Views", kinds=[1], points=5)
    make_rule(
        name="Director", category="fit", field="job_title", operator="contains", value="director", points=40
    )
    lead = make_lead(job_title="Director")
    make_interaction(lead, "page_view")

    lead = score_of(lead)
    assert (lead.rule_score, lead.grade, lead.priority) == (45, "A3", 45)
    assert ScoreSnapshot.objects.filter(lead=lead).count() == 1

    score_of(lead)  # nothing changed: no new snapshot
    assert ScoreSnapshot.objects.filter(lead=lead).count() == 1

    for _ in range(2):
        make_interaction(lead, "page_view")
    lead = score_of(lead)
    assert lead.grade == "A2"
    snapshots = list(ScoreSnapshot.objects.filter(lead=lead).order_by("taken_at"))
    assert [s.rule_score for s in snapshots] == [45, 55]
    assert snapshots[-1].grade == "A2"


def test_predictions_are_blended_into_priority_in_the_same_write(monkeypatch: pytest.MonkeyPatch) -> None:
    make_rule(name="Views", kinds=[1], points=10)
    a, b = make_lead(), make_lead()
    make_interaction(a, "page_view")
    factors = [[{"feature": "source", "label": "Referral", "effect": 0.2}], []]

    def fake_predict(lead_ids: list[int], *, now: object) -> ml_services.Predictions:
        assert lead_ids == [a.pk, b.pk]
        return ml_services.Predictions(
            probability=np.array([0.8, np.nan]),
            factors_json=[json.dumps(f) for f in factors],
            weight=0.5,
            model_version_id=1,
        )

    monkeypatch.setattr(services, "predict_for_leads", fake_predict)
    services.rescore_leads([b.pk, a.pk])
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.ml_probability == pytest.approx(0.8)
    assert a.priority == pytest.approx(0.5 * 10 + 0.5 * 80)
    assert a.ml_factors == factors[0]
    assert b.ml_probability is None
    assert b.priority == 0


def test_recompute_all_scores_every_lead_and_keeps_newer_event_scores() -> None:
    make_rule(name="Views", kinds=[1], points=3)
    leads = [make_lead() for _ in range(5)]
    for lead in leads[:3]:
        make_interaction(lead, "page_view")

    run = services.recompute_all(chunk_size=2)
    assert run.status == "done"
    assert run.total_leads == 5
    assert run.done_leads == 5
    assert run.changed_leads == 5
    assert sorted(Lead.objects.values_list("rule_score", flat=True)) == [0, 0, 3, 3, 3]

    run = services.recompute_all(chunk_size=2)
    assert run.changed_leads == 0  # unchanged rows are skipped


def test_install_default_rules_is_idempotent_and_valid() -> None:
    added = defaults.install_default_rules()
    assert added >= 25
    assert defaults.install_default_rules() == 0
    from scoring.models import GradeBand, Rule

    assert Rule.objects.count() == added
    assert GradeBand.objects.filter(dimension="fit").count() == 4
    lead = make_lead(job_title="Managing Director", employee_count=40, industry="Software", country="DE")
    make_interaction(lead, "page_view", payload={"url": "/pricing"})
    run = services.recompute_all()
    lead.refresh_from_db()
    assert run.errors == []
    assert lead.grade
    assert lead.rule_score == sum(e["points"] for e in lead.score_breakdown) > 30


@pytest.mark.django_db(transaction=True)
def test_streamed_full_recompute_agrees_with_the_per_lead_path() -> None:
    """Outside a transaction on PostgreSQL the recompute aggregates into a temp table and streams;
    every score must equal what the event path (one lead at a time) computes."""
    now = timezone.now()
    make_bands()
    make_rule(name="Pricing views", kinds=[1], points=4, window_days=30, pattern="/pricing", cap=12)
    make_rule(name="Decayed views", kinds=[1], points=10, half_life_days=7)
    make_rule(name="All-time downloads", kinds=[3], points=6)
    make_rule(name="CTO", category="fit", field="job_title", operator="contains", value="cto", points=15)
    leads = [make_lead(job_title="CTO" if i % 3 == 0 else "Intern") for i in range(12)]
    for i, lead in enumerate(leads):
        for day in range(i % 5):
            make_interaction(
                lead, "page_view", occurred_at=now - timedelta(days=day * 9), payload={"url": "/pricing"}
            )
        if i % 4 == 0:
            make_interaction(lead, "content_download", occurred_at=now - timedelta(days=200))

    run = services.recompute_all(chunk_size=5, now=now)
    assert run.status == "done"
    streamed = {
        row[0]: row[1:]
        for row in Lead.objects.values_list(
            "id", "rule_score", "fit_score", "engagement_score", "grade", "score_breakdown"
        )
    }
    assert len({v[0] for v in streamed.values()}) > 3  # the data really spreads the scores
    services.rescore_leads([lead.pk for lead in leads], now=now)
    again = {
        row[0]: row[1:]
        for row in Lead.objects.values_list(
            "id", "rule_score", "fit_score", "engagement_score", "grade", "score_breakdown"
        )
    }
    assert again == streamed
