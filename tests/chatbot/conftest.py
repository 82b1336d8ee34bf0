from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    """Throttle counters live in the cache; each test starts with none."""
    from chatbot import services

    cache.clear()
    from chatbot import api

    services._faq_cache.clear()
    api._sites.clear()
    yield
    cache.clear()
