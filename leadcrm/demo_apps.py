"""Demo set-up of the other apps (scoring rules and first scores, the model, the chat site)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime


def seed_apps(*, now: datetime) -> Iterator[str]:
    """Run each app's idempotent demo set-up and say what it did."""
    from scoring import services as scoring

    if hasattr(scoring, "install_default_rules"):
        scoring.install_default_rules()
        yield "Scoring: default rules and grade bands in place."
    if hasattr(scoring, "recompute_all"):
        scoring.recompute_all()
        yield "Scoring: every lead scored."
