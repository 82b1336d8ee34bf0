"""Test settings: the product's settings as the environment gives them, plus what only tests need."""

from __future__ import annotations

import os

# Tests run with DEBUG on and off; neither needs a real secret or HTTPS-only cookies.
os.environ.setdefault("SECRET_KEY", "tests-only-not-a-secret")
os.environ.setdefault("SECURE_COOKIES", "0")

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users only
