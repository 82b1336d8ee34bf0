"""The queue order: a blend of the rule score and the model's probability. Pure."""

from __future__ import annotations

import numpy as np


def combined_priority(rule_score: np.ndarray, probability: np.ndarray | None, weight: float) -> np.ndarray:
    """Priority for each lead: (1 - weight) · rule score + weight · 100 · probability.

    `probability` may hold NaN for leads the model could not score (or be None when no model is
    promoted); those leads rank by their rule score alone, so cold start never hides anyone.
    """
    rule_score = np.asarray(rule_score, dtype=float)
    if probability is None:
        return rule_score.copy()
    probability = np.asarray(probability, dtype=float)
    blended = (1.0 - weight) * rule_score + weight * 100.0 * probability
    return np.where(np.isnan(probability), rule_score, blended)
