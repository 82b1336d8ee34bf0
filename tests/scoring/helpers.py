"""Factories for scoring tests: plain functions with defaults."""

from __future__ import annotations

from typing import Any

from scoring.engine import RuleSpec
from scoring.models import GradeBand, Rule


def make_rule(**fields: Any) -> Rule:
    """An engagement rule by default (+5 per page view); pass category/field/... for others."""
    defaults: dict[str, Any] = {
        "name": f"Rule {Rule.objects.count() + 1}",
        "category": "engagement",
        "points": 5,
        "reason": "Viewed {count} pages",
    }
    if fields.get("category", "engagement") == "engagement":
        defaults["kinds"] = [1]
    defaults.update(fields)
    rule = Rule(**defaults)
    rule.full_clean()
    rule.save()
    return rule


def spec(**fields: Any) -> RuleSpec:
    defaults: dict[str, Any] = {"id": 1, "name": "r", "category": "fit", "points": 10, "reason": "why"}
    defaults.update(fields)
    return RuleSpec(**defaults)


def make_bands() -> None:
    for dimension, label, minimum in [
        ("fit", "A", 40),
        ("fit", "B", 20),
        ("fit", "C", 0),
        ("engagement", "1", 30),
        ("engagement", "2", 10),
        ("engagement", "3", 0),
    ]:
        GradeBand.objects.create(dimension=dimension, label=label, min_score=minimum)
