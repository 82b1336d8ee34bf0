"""`manage.py retrain`: scriptable, and its exit code says whether a model is now in use."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from scoring.ml.models import ModelVersion

pytestmark = pytest.mark.django_db


def test_retrain_with_too_few_outcomes_fails_and_says_why() -> None:
    out = StringIO()
    with pytest.raises(CommandError, match="too few outcomes"):
        call_command("retrain", stdout=out)
    assert "Not enough outcomes to learn from yet" in out.getvalue()
    assert not ModelVersion.objects.exists()


def test_retrain_promotes_a_model_on_enough_history(history) -> None:
    out = StringIO()
    call_command("retrain", stdout=out)
    assert "is now in use" in out.getvalue()
    assert ModelVersion.objects.filter(is_promoted=True).count() == 1


def test_retrain_exits_non_zero_when_the_candidate_is_not_promoted(history, promoted, settings) -> None:
    from scoring.ml.models import MlSettings

    MlSettings.objects.update(
        promotion_tolerance=-1.0
    )  # the candidate must beat the current model by 1.0 AUC
    with pytest.raises(CommandError, match="not promoted"):
        call_command("retrain", stdout=StringIO())
    assert ModelVersion.objects.get(is_promoted=True) == promoted
