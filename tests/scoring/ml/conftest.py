from __future__ import annotations

import pytest
from django.utils import timezone

from bench.synthetic import make_history
from scoring.ml import services


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def history(db, now):
    """A few hundred leads with a learnable signal; ~70% closed with an outcome."""
    return make_history(360, now=now, seed=3)


@pytest.fixture
def promoted(history, now):
    outcome = services.train_and_promote(now=now)
    assert outcome.version is not None, outcome.message
    assert outcome.version.is_promoted, outcome.message
    return outcome.version
