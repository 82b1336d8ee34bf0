"""Settings for the bench_chat server only: production limits off so one client can load-test."""

from __future__ import annotations

from leadcrm.settings import *  # noqa: F403
from leadcrm.settings import DATABASES, IS_POSTGRES, REST_FRAMEWORK

# One benchmark client sends every visitor's messages from 127.0.0.1; the real per-IP and
# per-visitor limits would (correctly) stop it.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"chat_visitor": "1000000/min", "chat_ip": "10000000/min"},
}
DEBUG = False  # no query log growing in memory during the run
# Under ASGI every concurrent request runs in its own thread with its own database connection;
# with 200 visitors at once, persistent connections would exceed PostgreSQL's max_connections.
# Close them after each request (production: the same, or a pooler such as PgBouncer).
DATABASES["default"]["CONN_MAX_AGE"] = 0
if IS_POSTGRES:
    # ...and "close" hands the connection back to a small pool per process instead of ending it:
    # a new PostgreSQL connection per request (backend start, cold catalog caches, TLS-less
    # handshake) cost more CPU than the chat message itself. max_size covers the chat's
    # CHAT_DB_SLOTS (8) plus the websocket consumers' short lookups.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 2, "max_size": 12, "timeout": 30}
# The lead rescore that a message queues goes to the broker (a worker's job), never inline in
# the web process, whatever CELERY_TASK_ALWAYS_EAGER says in the environment.
CELERY_TASK_ALWAYS_EAGER = False
