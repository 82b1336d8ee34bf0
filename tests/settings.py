"""Test settings: the product's settings as the environment gives them, plus what only tests need."""

from __future__ import annotations

import os

# Tests run with DEBUG on and off; neither needs a real secret or HTTPS-only cookies.
os.environ.setdefault("SECRET_KEY", "tests-only-not-a-secret")
os.environ.setdefault("SECURE_COOKIES", "0")

# Under pytest-xdist (`-n 2`) each worker has its own test database (pytest-django adds _gw0,
# _gw1) and here its own Redis database: rate-limit counters, caches, channel groups and Celery
# queues of one worker must not be seen by the other.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and os.environ.get("REDIS_URL"):
    from urllib.parse import urlparse

    _url = urlparse(os.environ["REDIS_URL"])
    _db = (int(_url.path.strip("/") or 0) + int(_worker[2:])) % 16
    os.environ["REDIS_URL"] = _url._replace(path=f"/{_db}").geturl()

from config.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users only
