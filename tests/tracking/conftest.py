"""Fixtures for the tracking tests: a site with an allowed origin, and clean per-process caches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache.backends.redis import RedisCache

from chatbot import api as chat_api
from chatbot.models import Site
from tracking import limits, services
from tracking.models import TrackingMode
from tracking.visitors import issue_visitor_id

ORIGIN = "https://shop.example"


def _forget_limit_counters() -> None:
    limits._local.clear()
    cache = chat_api.THROTTLE_CACHE
    if isinstance(cache, RedisCache):
        client = cache._cache.get_client(write=True)
        keys = client.keys("trk:*")
        if keys:
            client.delete(*keys)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    chat_api._sites.clear()
    services.clear_caches()
    _forget_limit_counters()
    yield
    chat_api._sites.clear()
    services.clear_caches()


@pytest.fixture
def site(db: None) -> Site:
    site = Site.objects.create(name="Shop", allowed_origins=[ORIGIN])
    services.set_tracking_mode(site=site, mode=TrackingMode.ANONYMOUS_UNTIL_CONSENT)
    return site


def events_url(site: Site) -> str:
    return f"/api/v1/track/sites/{site.public_key}/events"


def send(
    client: Any, site: Site, body: Any, origin: str = ORIGIN, content_type: str = "text/plain", **headers: Any
):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(events_url(site), data, content_type=content_type, HTTP_ORIGIN=origin, **headers)


_n = [0]


def page_view(url: str = "https://shop.example/pricing", **fields: Any) -> dict[str, Any]:
    _n[0] += 1
    return {"id": f"ev{_n[0]:08d}x", "type": "page_view", "url": url, "title": "Pricing", **fields}


def visitor(site: Site) -> str:
    return issue_visitor_id(site.pk)
