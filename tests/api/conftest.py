"""Fixtures of the REST API tests: an API client logged in as a given user."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()  # request counters of earlier tests must not answer 429 here


@pytest.fixture
def as_user() -> Callable[..., APIClient]:
    def client_for(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for
