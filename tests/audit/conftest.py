from __future__ import annotations

import uuid

import pytest
from django.db import connection

from audit import receivers


@pytest.fixture(autouse=True)
def _fresh_view_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The "viewed" de-duplication lives in the cache, which parallel tests share: each test gets
    keys of its own (clearing the cache would reset other tests' rate limits)."""
    monkeypatch.setattr(receivers, "KEY_PREFIX", f"audit:viewed:test-{uuid.uuid4().hex}")


@pytest.fixture
def postgres(db: None) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row-level capture needs PostgreSQL (DATABASE_URL=postgres://…)")
