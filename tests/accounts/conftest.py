from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    """API token failure counters live in the cache; every test starts from zero."""
    cache.clear()
    yield
    cache.clear()
