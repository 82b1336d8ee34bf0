"""Training from the CRM's own outcomes: cold start, leakage, protected attributes, the promotion gate."""

from __future__ import annotations

import numpy as np
import pytest
from django.utils import timezone

from bench.synthetic import make_history
from leadcrm.models import Interaction, InteractionKind, Lead
from scoring.ml import pipeline, services
from scoring.ml.models import ModelVersion, ProtectedAttribute, VersionStatus
from scoring.models import ScoreSnapshot
from tests.factories import make_lead

pytestmark = pytest.mark.django_db


def test_cold_start_trains_nothing_and_says_why(now):
    make_history(40, now=now, seed=1)
    outcome = services.train_and_promote(now=now)
    assert outcome.state == "cold_start"
    assert "Not enough outcomes" in outcome.message
    assert "rule score alone" in outcome.message
    assert not ModelVersion.objects.exists()
    assert services.predict_for_leads(list(Lead.objects.values_list("id", flat=True)), now=now) is None


def test_training_uses_only_what_was_known_before_closing(promoted, now):
    # Every won lead got a purchase *after* closing in the synthetic history: a leak if counted.
    assert Interaction.objects.filter(kind=InteractionKind.PURCHASE).exists()
    assert not any(name.startswith("purchase_") for name in promoted.features)
    assert "purchase_90d" in promoted.metrics["dropped_columns"]  # all zero before closing
    for field in ("status", "closed_at", "lost_reason", "owner", "grade", "priority", "ml_probability"):
        assert field not in promoted.features
    frame, y, cutoff, _ = services.training_data(now=now)
    single = [
        pipeline.single_feature_auc(
            pipeline.infer_schema(frame[[c]]).encode(frame[[c]])[:, 0], y, categorical=False
        )
        for c in ("touches_total", "days_since_last_touch")
    ]
    assert max(single) < 0.95


def test_protected_attributes_never_become_features(history, now):
    # The synthetic leads carry custom.gender; it is on the default protected list.
    assert Lead.objects.filter(custom__has_key="gender").exists()
    ProtectedAttribute.objects.get_or_create(name="Plan interest")  # case and spaces ignored
    outcome = services.train_and_promote(now=now)
    features = outcome.version.features
    assert "custom.gender" not in features
    assert "custom.plan_interest" not in features
    assert outcome.version.metrics["dropped_columns"]["custom.gender"] == "protected attribute"
    assert "custom.budget" in features


def test_promotion_gate_refuses_a_worse_model(promoted, now):
    frame, y, cutoff, _ = services.training_data(now=now)
    train, holdout = services.time_split(cutoff, y)
    flipped = 1 - y[train]  # learns the opposite of what converts: clearly worse
    worse = pipeline.select_and_fit(frame.iloc[train].reset_index(drop=True), flipped, folds=3)
    figures = pipeline.evaluate(y[holdout], worse.predict_proba(worse.schema.encode(frame.iloc[holdout])))
    promote, decision, _ = services.promotion_gate(worse, figures, frame, y, cutoff, holdout, tolerance=0.005)
    assert not promote, decision
    assert decision.startswith("Not promoted")
    # And on outcomes the current model never saw, the same verdict.
    scorer = services.load_promoted()[1]
    scorer.metrics["trained_until"] = float(np.quantile(cutoff, 0.5))
    promote, decision, current = services.promotion_gate(
        worse, figures, frame, y, cutoff, holdout, tolerance=0.005
    )
    assert not promote, decision
    assert "neither model trained on" in decision
    assert current["roc_auc"] > figures["roc_auc"]


def test_retrain_not_worse_is_promoted_and_rollback_restores_the_previous(promoted, now):
    second = services.train_and_promote(now=now).version
    second.refresh_from_db()
    assert second.is_promoted, second.decision
    promoted.refresh_from_db()
    assert promoted.status == VersionStatus.RETIRED
    assert not promoted.is_promoted
    back = services.rollback()
    assert back.pk == promoted.pk
    assert services.load_promoted()[0] == promoted.pk  # the per-process cache follows the promotion


def test_predictions_are_in_the_order_asked_and_explained(promoted, now):
    open_ids = list(Lead.objects.open().order_by("-id").values_list("id", flat=True)[:25])
    closed_id = Lead.objects.filter(status="won").values_list("id", flat=True).first()
    asked = [*open_ids, 10**9, closed_id]
    result = services.predict_for_leads(asked, now=now)
    assert result.model_version_id == promoted.pk
    assert result.weight == 0.5
    assert len(result.probability) == len(asked) == len(result.factors)
    assert np.isnan(result.probability[len(open_ids)])
    assert result.factors[len(open_ids)] == []
    assert np.all((result.probability[: len(open_ids)] > 0) & (result.probability[: len(open_ids)] < 1))
    for reasons in result.factors[: len(open_ids)]:
        assert 0 < len(reasons) <= 4
        assert {"feature", "label", "effect"} <= set(reasons[0])
        assert reasons[0]["label"].endswith((": raises", ": lowers"))
        assert (reasons[0]["effect"] > 0) == reasons[0]["label"].endswith("raises")
    # Predicting writes nothing: the score write stores it (see the rescore test below).
    assert not ScoreSnapshot.objects.filter(ml_probability__isnull=False).exists()
    gone = services.predict_for_leads([10**9], now=now)  # a lead deleted meanwhile
    assert np.isnan(gone.probability).all()
    assert gone.factors == [[]]
    one = services.predict_for_leads([open_ids[3]], now=now)
    assert one.probability[0] == pytest.approx(result.probability[3])


def test_a_new_lead_with_no_history_still_gets_a_probability(promoted):
    lead = make_lead(source="referral", custom={"plan_interest": "pro"})
    result = services.predict_for_leads([lead.pk], now=timezone.now())
    assert 0 < result.probability[0] < 1
