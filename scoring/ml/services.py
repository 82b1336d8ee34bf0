"""Predictive scoring services (filled in by the predictive-scoring work).

`predict_for_leads` is what the rule-scoring pipeline calls in the same task as the rule score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np


@dataclass(frozen=True)
class Predictions:
    probability: np.ndarray  # one per lead, in the order asked; NaN where not scored
    factors: list[list[dict]]  # per lead: [{"feature":…, "label":…, "effect": +/-float}, …]
    weight: float  # the manager's blend weight for combined priority
    model_version_id: int


def predict_for_leads(lead_ids: Sequence[int], *, now: datetime) -> Predictions | None:
    """Probabilities and reasons from the promoted model; None while no model is promoted (cold start)."""
    return None
