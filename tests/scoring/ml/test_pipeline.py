"""The shared tabular pipeline, pure: no database."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scoring.ml.pipeline import (
    MISSING,
    PipelineError,
    infer_schema,
    select_and_fit,
)


def frame_with_signal(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    minutes = rng.exponential(10, n)
    source = rng.choice(["Referral", "referral ", "Purchased list", "Web"], n)
    logit = (
        0.25 * minutes - 2 + np.where(np.char.strip(np.char.lower(source.astype(str))) == "referral", 1.5, 0)
    )
    logit -= np.where(source == "Purchased list", 1.5, 0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    frame = pd.DataFrame(
        {
            "Prospect ID": [f"id-{i:05d}" for i in range(n)],
            "Lead Number": np.arange(100_000, 100_000 + n),
            "Minutes": [f"{m:,.1f}" for m in minutes],  # numbers written as text
            "Source": source,
            "City": rng.choice(["Select", "Berlin", "Paris", None], n),
            "Always": "No",
            "Noise": rng.normal(size=n),
        }
    )
    return frame, y


def test_schema_infers_types_and_drops_ids_constants():
    frame, _ = frame_with_signal()
    schema = infer_schema(frame)
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds["Minutes"] == "numeric"
    assert kinds["Source"] == "categorical"
    assert {"Prospect ID", "Lead Number", "Always"} <= set(schema.dropped)
    source = next(c for c in schema.columns if c.name == "Source")
    assert "referral" in source.levels
    assert "Referral" not in source.levels
    city = next(c for c in schema.columns if c.name == "City")
    assert "select" not in city.levels  # a form placeholder means "not answered"
    codes = city.encode(pd.Series(["Select", None, "Berlin"]))
    assert city.levels[codes[0]] == MISSING
    assert city.levels[codes[1]] == MISSING


def test_leakage_guard_drops_a_feature_equal_to_the_label():
    frame, y = frame_with_signal()
    frame["Closed as"] = np.where(y == 1, "won", "lost")
    scorer = select_and_fit(frame, y, folds=3, candidates=("logistic_regression",))
    assert "Closed as" not in scorer.schema.names
    assert "leaks the outcome" in scorer.metrics["dropped_columns"]["Closed as"]
    assert scorer.metrics["roc_auc"] < 0.99  # the model did not get to use it


def test_linear_explanations_sum_exactly_to_the_log_odds():
    frame, y = frame_with_signal()
    scorer = select_and_fit(frame, y, folds=3, candidates=("logistic_regression",))
    X = scorer.schema.encode(frame)
    p, effects = scorer.explain(X)
    logit = np.log(p / (1 - p))
    base = scorer.slope * scorer.model.base + scorer.intercept
    np.testing.assert_allclose(effects.sum(axis=1) + base, logit, atol=1e-8)


def test_explanations_rank_the_driving_feature_first_and_with_the_right_sign():
    frame, y = frame_with_signal(n=1500)
    for candidate in ("logistic_regression", "hist_gradient_boosting"):
        scorer = select_and_fit(frame, y, folds=3, candidates=(candidate,))
        X = scorer.schema.encode(frame)
        _, effects = scorer.explain(X)
        minutes = scorer.schema.names.index("Minutes")
        values = X[:, minutes]
        high, low = values > np.quantile(values, 0.9), values < np.quantile(values, 0.1)
        assert effects[high, minutes].mean() > 0 > effects[low, minutes].mean(), candidate
        factors = scorer.factors(X[high][:20], effects[high][:20])
        assert all(row and row[0]["feature"] == "Minutes" for row in factors), candidate
        first = factors[0][0]
        assert first["effect"] > 0
        assert first["label"].endswith(": raises")
        assert all(
            abs(a["effect"]) >= abs(b["effect"])
            for row in factors
            for a, b in zip(row, row[1:], strict=False)
        )
        # What the scoring path stores: the same reasons as JSON text, byte for byte json.dumps.
        everyone = scorer.factors(X, effects)
        assert scorer.factors_json(X, effects) == [json.dumps(row) for row in everyone], candidate
        assert any(len(row) < 4 for row in everyone)  # weak effects (< 0.05) are left out


def test_stored_reasons_are_json_text_even_for_values_with_quotes_and_line_breaks():
    frame, y = frame_with_signal(n=1500)
    # Values and column names as an import may bring them: quotes, a line break, a backslash,
    # non-ASCII (category values are normalised, so their line break becomes a space).
    frame["Source"] = frame["Source"].replace("Purchased list", 'Fair "Spring"\nHall 3\\B – Köln')
    frame = frame.rename(columns={"Minutes": 'Minutes\n"on site"'})
    scorer = select_and_fit(frame, y, folds=3, candidates=("logistic_regression",))
    X = scorer.schema.encode(frame)
    _, effects = scorer.explain(X)
    texts = scorer.factors_json(X, effects)
    assert texts == [json.dumps(row) for row in scorer.factors(X, effects)]
    assert any('fair \\"spring\\" hall 3\\\\b \\u2013 k\\u00f6ln' in text for text in texts)
    assert any('"Minutes\\n\\"on site\\""' in text for text in texts)
    assert all("\n" not in text for text in texts)  # one line each: the break is escaped
    assert scorer.factors_json(X[:0], effects[:0]) == []


def test_one_class_only_is_refused():
    frame, y = frame_with_signal(n=50)
    with pytest.raises(PipelineError, match="only one class"):
        select_and_fit(frame, np.ones(len(y)), folds=3)


def test_boosted_trees_on_bins_give_exactly_the_public_prediction():
    frame, y = frame_with_signal(n=1500)
    scorer = select_and_fit(frame, y, folds=3, candidates=("hist_gradient_boosting",))
    model = scorer.model
    X = scorer.schema.encode(frame)
    odd = X[:40].copy()
    source = scorer.schema.names.index("Source")
    minutes = scorer.schema.names.index("Minutes")
    odd[:10, source] = scorer.schema.columns[source].levels.index("(other)")  # never seen in training
    odd[10:20, minutes] = np.nan
    odd[20:30, minutes] = [-1e9, 1e9, np.inf, -np.inf, 0, 1e-300, 5, 5.0000001, 10, 100]
    odd[30:40, :] = np.nan
    for rows in (X, odd):
        np.testing.assert_array_equal(model.decision(rows), model.model.decision_function(rows))


def test_boosting_keeps_the_trees_up_to_its_best_validation_score():
    frame, y = frame_with_signal(n=3000)
    scorer = select_and_fit(frame, y, folds=3, candidates=("hist_gradient_boosting",))
    model = scorer.model.model
    best = int(np.argmax(model.validation_score_))
    assert model.n_iter_ == best
    assert len(model.validation_score_) > best + 1  # early stopping had fitted more rounds
