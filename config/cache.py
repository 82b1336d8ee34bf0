"""A Redis cache that fails open: Redis away or hung means a per-process cache, never a 500.

Everything the product keeps in the cache can be lost or recomputed (report results, throttle
counters, the FAQ matcher's version stamp). So when Redis refuses, drops or hangs (the socket
timeouts in settings bound the wait), the call falls back to a local-memory cache in this process,
Redis is left alone for `PAUSE_AFTER_FAILURE` seconds, and one warning line says so. Throttles keep
counting per process meanwhile: a visitor can keep chatting, a flood is still limited.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)

PAUSE_AFTER_FAILURE = 5.0
T = TypeVar("T")


class FailOpenRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self.fallback = LocMemCache(f"fail-open-{id(self)}", {"OPTIONS": {"MAX_ENTRIES": 10_000}})
        self._paused_until = 0.0
        self._failing = False
        self._lock = threading.Lock()

    @property
    def redis_available(self) -> bool:
        return time.monotonic() >= self._paused_until

    def _guarded(self, name: str, call: Callable[[], T], fallback: Callable[[], T]) -> T:
        if not self.redis_available:
            return fallback()
        try:
            result = call()
        except Exception as exc:  # redis-py's ConnectionError, TimeoutError, … : all mean "away"
            with self._lock:
                self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
                first = not self._failing
                self._failing = True
            if first:
                logger.warning(
                    "Cache (Redis) unavailable in %s (%s: %s); using a per-process cache until it answers",
                    name,
                    type(exc).__name__,
                    exc,
                )
            return fallback()
        if self._failing:
            with self._lock:
                self._failing = False
            logger.warning("Cache (Redis) answers again")
        return result

    # The operations the product uses; each falls back to the same call on the local cache.
    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._guarded(
            "get",
            lambda: super(FailOpenRedisCache, self).get(key, default, version),
            lambda: self.fallback.get(key, default, version),
        )

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        self._guarded(
            "set",
            lambda: super(FailOpenRedisCache, self).set(key, value, timeout, version),
            lambda: self.fallback.set(key, value, timeout, version),
        )

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._guarded(
            "add",
            lambda: super(FailOpenRedisCache, self).add(key, value, timeout, version),
            lambda: self.fallback.add(key, value, timeout, version),
        )

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._guarded(
            "delete",
            lambda: super(FailOpenRedisCache, self).delete(key, version),
            lambda: self.fallback.delete(key, version),
        )

    def get_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        return self._guarded(
            "get_many",
            lambda: super(FailOpenRedisCache, self).get_many(keys, version),
            lambda: self.fallback.get_many(keys, version),
        )

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self._guarded(
            "incr",
            lambda: super(FailOpenRedisCache, self).incr(key, delta, version),
            lambda: self.fallback.incr(key, delta, version),
        )

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._guarded(
            "touch",
            lambda: super(FailOpenRedisCache, self).touch(key, timeout, version),
            lambda: self.fallback.touch(key, timeout, version),
        )
