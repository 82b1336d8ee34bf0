from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    """Throttle counters (in the cache) and per-process caches of sites and fitted FAQs start empty."""
    from chatbot import api, faq

    cache.clear()
    faq._cache.clear()
    api._sites.clear()
    yield
    cache.clear()
