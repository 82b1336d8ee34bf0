"""Settings for the bench_chat server only: production limits off so one client can load-test."""

from __future__ import annotations

from config.settings import *  # noqa: F403
from config.settings import DATABASES, IS_POSTGRES, REST_FRAMEWORK

# One benchmark client sends every visitor's messages from 127.0.0.1; the real per-IP and
# per-visitor limits would (correctly) stop it.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {
        scope: "100000000/hour" if scope.endswith("_hour") else "10000000/min"
        for scope in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    },
}
DEBUG = False  # no query log growing in memory during the run
# Under ASGI every concurrent request runs in its own thread with its own database connection;
# with 200 visitors at once, persistent connections would exceed PostgreSQL's max_connections.
if IS_POSTGRES:
    # The production option DATABASE_POOL_MAX=12 (config/settings.py), always on here: a new
    # PostgreSQL connection per request (backend start, cold catalog caches) cost more CPU than the
    # chat message itself. 12 covers the chat's CHAT_DB_SLOTS (8) plus the websocket consumers'
    # short lookups.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 2, "max_size": 12, "timeout": 30}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# The lead rescore that a message queues goes to the broker (a worker's job), never inline in
# the web process, whatever CELERY_TASK_ALWAYS_EAGER says in the environment.
CELERY_TASK_ALWAYS_EAGER = False
