"""The rule engine's pure part: arrays and RuleSpecs in, points out. No database."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scoring.engine import (
    CounterKey,
    Counts,
    engagement_points,
    evaluate,
    fit_matches,
    grades,
    summarize,
)
from tests.scoring.helpers import spec

TITLES = np.array(["Director of Sales", "CEO", "", None, "sales director", "Intern"], dtype=object)
EMPLOYEES = np.array([5, 50, 500, np.nan, 501, 49.5], dtype=float)


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("equals", "ceo", [0, 1, 0, 0, 0, 0]),
        ("not_equals", "CEO", [1, 0, 1, 1, 1, 1]),
        ("in", ["CEO", "intern"], [0, 1, 0, 0, 0, 1]),
        ("contains", "Director", [1, 0, 0, 0, 1, 0]),
        ("is_set", None, [1, 1, 0, 0, 1, 1]),
        ("is_empty", None, [0, 0, 1, 1, 0, 0]),
    ],
)
def test_text_operators(operator: str, value: object, expected: list[int]) -> None:
    rule = spec(field="job_title", operator=operator, value=value)
    assert fit_matches(rule, TITLES).astype(int).tolist() == expected


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("gt", 50.0, [0, 0, 1, 0, 1, 0]),
        ("lt", 50.0, [1, 0, 0, 0, 0, 1]),
        ("between", [50.0, 500.0], [0, 1, 1, 0, 0, 0]),  # inclusive
        ("equals", 500.0, [0, 0, 1, 0, 0, 0]),
        ("not_equals", 500.0, [1, 1, 0, 1, 1, 1]),
        ("in", [5.0, 501.0], [1, 0, 0, 0, 1, 0]),
        ("is_set", None, [1, 1, 1, 0, 1, 1]),
        ("is_empty", None, [0, 0, 0, 1, 0, 0]),
    ],
)
def test_number_operators(operator: str, value: object, expected: list[int]) -> None:
    rule = spec(field="employee_count", operator=operator, value=value)
    assert fit_matches(rule, EMPLOYEES).astype(int).tolist() == expected


def test_boolean_and_custom_attributes() -> None:
    consent = np.array([True, False, True], dtype=object)
    assert fit_matches(spec(field="marketing_consent", operator="equals", value=True), consent).tolist() == [
        True,
        False,
        True,
    ]
    # Custom attributes arrive as text (PostgreSQL ->>) or typed (SQLite json_extract); both work.
    plan = np.array(["pro", "Basic", None, 12, "40"], dtype=object)
    assert fit_matches(spec(field="custom.plan", operator="equals", value="PRO"), plan).tolist() == [
        True,
        False,
        False,
        False,
        False,
    ]
    assert fit_matches(spec(field="custom.seats", operator="gt", value=10.0), plan).tolist() == [
        False,
        False,
        False,
        True,
        True,
    ]


def test_large_batches_give_the_same_answer_as_small_ones() -> None:
    titles = np.array(list(TITLES) * 100, dtype=object)  # factorized path
    rule = spec(field="job_title", operator="contains", value="director")
    assert fit_matches(rule, titles).tolist() == fit_matches(rule, TITLES).tolist() * 100


def test_per_occurrence_points_are_capped_and_negative_caps_too() -> None:
    counts = np.array([0, 1, 2, 10])
    assert engagement_points(spec(category="engagement", points=5, cap=15), counts).tolist() == [0, 5, 10, 15]
    assert engagement_points(spec(category="engagement", points=-5, cap=12), counts).tolist() == [
        0,
        -5,
        -10,
        -12,
    ]
    assert engagement_points(spec(category="engagement", points=5), counts).tolist() == [0, 5, 10, 50]


def test_threshold_gives_points_once_when_the_count_is_reached() -> None:
    counts = np.array([0, 2, 3, 30])
    rule = spec(category="engagement", points=20, threshold=3)
    assert engagement_points(rule, counts).tolist() == [0, 0, 20, 20]


def test_decayed_counts_are_used_when_a_half_life_is_set() -> None:
    key = CounterKey((1,), "", 30, 7.0)
    counts = Counts(raw={key: np.array([2.0, 2.0])}, weighted={key: np.array([2.0, 1.0])})
    rule = spec(category="engagement", points=10, kinds=(1,), window_days=30, half_life_days=7.0)
    evaluation = evaluate([rule], {}, counts, 2)
    assert evaluation.points[:, 0].tolist() == [20, 10]
    assert evaluation.counts[rule.id].tolist() == [2.0, 2.0]  # the reason shows real occurrences


def test_a_rule_that_raises_is_reported_and_the_others_still_score() -> None:
    broken = spec(id=1, field="job_title", operator="gt", value="not a number")
    good = spec(id=2, field="job_title", operator="contains", value="ceo", points=7)
    evaluation = evaluate([broken, good], {"job_title": TITLES}, Counts(), len(TITLES))
    assert 1 in evaluation.failures
    assert "ValueError" in evaluation.failures[1]
    assert evaluation.points[:, 0].tolist() == [0] * len(TITLES)
    assert evaluation.points[:, 1].tolist() == [0, 7, 0, 0, 0, 0]


def test_grade_bands_give_fit_letter_and_engagement_digit() -> None:
    bands = [
        ("fit", "A", 40),
        ("fit", "B", 20),
        ("fit", "C", 0),
        ("engagement", "1", 30),
        ("engagement", "2", 0),
    ]
    fit = np.array([45, 40, 39, 0, -10])
    engagement = np.array([30, 29, 100, -5, 0])
    assert grades(fit, engagement, bands) == ["A1", "A2", "B1", "C2", "C2"]  # below all bands: the lowest
    assert grades(fit, engagement, []) == [""] * 5


def test_breakdown_points_add_up_to_the_score_exactly() -> None:
    key = CounterKey((1,), "/pricing", 7, 3.0)
    specs = [
        spec(id=1, field="job_title", operator="contains", value="director", points=10, reason="Director"),
        spec(id=2, field="employee_count", operator="between", value=[50, 500], points=15, reason="Size"),
        spec(
            id=3,
            category="engagement",
            kinds=(1,),
            pattern="/pricing",
            window_days=7,
            half_life_days=3.0,
            points=3,
            cap=10,
            reason="Pricing page {count}× ({points})",
        ),
        spec(id=4, category="negative", detector="name_not_capitalised", points=-5, reason="lower case"),
    ]
    counts = Counts(
        raw={key: np.array([3.0, 0, 1, 0, 5, 2])}, weighted={key: np.array([2.4, 0, 0.3, 0, 4.9, 1.5])}
    )
    columns = {
        "job_title": TITLES,
        "employee_count": EMPLOYEES,
        "first_name": np.array(["Ada", "bob", "Cy", "Di", "Ed", "Flo"], dtype=object),
        "last_name": np.array(["Lee"] * 6, dtype=object),
    }
    scores = summarize(
        np.arange(1, 7), specs, evaluate(specs, columns, counts, 6), [("fit", "A", 15), ("fit", "B", 0)]
    )
    for i in range(6):
        entries = json.loads(scores.breakdown[i])
        assert sum(e["points"] for e in entries) == scores.rule_score[i]
        assert scores.rule_score[i] == scores.fit_score[i] + scores.engagement_score[i]
        for e in entries:
            assert set(e) == {"rule_id", "rule", "category", "points", "reason"}
    first = json.loads(scores.breakdown[0])
    assert {
        "rule_id": 3,
        "rule": "r",
        "category": "engagement",
        "points": 7,
        "reason": "Pricing page 3× (+7)",
    } in first
    assert scores.rule_score.tolist() == [17, 10, 16, 0, 20, 5]  # 1.5 × 3 = 4.5 rounds to 5
    assert scores.grade[2] == "A"
    assert scores.grade[1] == "B"
    assert json.loads(scores.breakdown[1])[-1]["points"] == -5  # "bob" is not capitalised
