"""Settings for the bench_chat server only: production limits off so one client can load-test."""

from __future__ import annotations

from leadcrm.settings import *  # noqa: F403
from leadcrm.settings import REST_FRAMEWORK

# One benchmark client sends every visitor's messages from 127.0.0.1; the real per-IP and
# per-visitor limits would (correctly) stop it.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"chat_visitor": "1000000/min", "chat_ip": "10000000/min"},
}
DEBUG = False  # no query log growing in memory during the run
