"""The tracking endpoint's per-IP and per-site limits: fixed one-minute windows, one round trip.

DRF's throttles cost two cache calls per limit per request (a read, then a write of the whole
history list); the snippet's endpoint is the hottest in the product. Here both counters are
INCR + EXPIRE in one Redis pipeline. Without Redis (the demo) or while it is away, each process
counts on its own (fails open to a per-process count, as config.cache does).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache.backends.redis import RedisCache

from chatbot.api import THROTTLE_CACHE

WINDOW = 60
_local: dict[str, int] = {}
_local_lock = threading.Lock()


def _rate(name: str) -> int:
    return int(settings.TRACKING_RATES[name])


def _count_locally(keys: list[str]) -> list[int]:
    with _local_lock:
        if len(_local) > 100_000:
            _local.clear()
        counts = []
        for key in keys:
            _local[key] = _local.get(key, 0) + 1
            counts.append(_local[key])
        return counts


# Both counters in one command: INCR each key, set its expiry on first use; returns the counts.
_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  if counts[i] == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return counts
"""
_script: Any = None
_script_pool: Any = None


def _redis_script() -> Any:
    """The counting script bound to one client of the cache's pool, built once per process."""
    global _script, _script_pool
    # RedisCache builds a new client object per call (get_client): ~1 ms here. Keep one.
    backend = THROTTLE_CACHE._cache  # type: ignore[attr-defined]
    pool = backend._get_connection_pool(True)
    if _script is None or _script_pool is not pool:
        _script_pool = pool
        _script = backend._client(connection_pool=pool).register_script(_SCRIPT)
    return _script


def _count(keys: list[str]) -> list[int]:
    cache = THROTTLE_CACHE
    if isinstance(cache, RedisCache) and getattr(cache, "redis_available", True):
        try:
            return [int(c) for c in _redis_script()(keys=keys, args=[WINDOW * 2])]
        except Exception:  # Redis away: count in this process, never refuse for that
            pass
    return _count_locally(keys)


def retry_after(*, ip: str, site_id: int, now: float | None = None) -> int | None:
    """Count this request; None if within the limits, else the seconds until the window ends."""
    now = time.time() if now is None else now
    window = int(now // WINDOW)
    ip_count, site_count = _count([f"trk:ip:{ip}:{window}", f"trk:site:{site_id}:{window}"])
    if ip_count > _rate("ip_minute") or site_count > _rate("site_minute"):
        return max(1, int((window + 1) * WINDOW - now))
    return None
