"""Settings switch shape from the environment alone (checked in a clean subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'name': str(s.DATABASES['default']['NAME']), "
    "'eager': s.CELERY_TASK_ALWAYS_EAGER, 'broker': s.CELERY_BROKER_URL, 'cache': s.CACHES['default']['BACKEND'], "
    "'layer': s.CHANNEL_LAYERS['default']['BACKEND'], 'debug': s.DEBUG, "
    "'pool': s.DATABASES['default'].get('OPTIONS', {}).get('pool'), 'max_age': s.DATABASES['default']['CONN_MAX_AGE']}))"
)


def probe(**env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG"}
    }
    clean.update(env, DJANGO_SETTINGS_MODULE="config.settings")
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_nothing_set_means_the_embedded_shape() -> None:
    result = probe(DEBUG="1")
    assert result.returncode == 0, result.stderr
    shape = json.loads(result.stdout.strip().splitlines()[-1])
    assert shape["engine"] == "django.db.backends.sqlite3"
    assert shape["name"].endswith("db.sqlite3")
    assert shape["eager"] is True
    assert shape["cache"].endswith("LocMemCache")
    assert shape["layer"].endswith("InMemoryChannelLayer")


def test_database_and_redis_urls_switch_to_the_production_shape() -> None:
    result = probe(
        SECRET_KEY="s3cret-for-the-test",
        DATABASE_URL="postgres://u:p@db.example:5432/crm",
        REDIS_URL="redis://cache:6379/0",
    )
    assert result.returncode == 0, result.stderr
    shape = json.loads(result.stdout.strip().splitlines()[-1])
    assert shape["engine"] == "django.db.backends.postgresql"
    assert shape["name"] == "crm"
    assert shape["eager"] is False
    assert shape["broker"] == "redis://cache:6379/0"
    assert shape["cache"].endswith("RedisCache")
    assert shape["layer"] == "channels_redis.core.RedisChannelLayer"
    assert shape["debug"] is False


def test_missing_secret_key_without_debug_stops_start_up() -> None:
    result = probe()
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_database_pool_max_gives_each_process_a_connection_pool_on_postgresql() -> None:
    url = "postgres://u@127.0.0.1:5432/x"
    plain = json.loads(probe(DEBUG="1", DATABASE_URL=url).stdout.strip().splitlines()[-1])
    assert plain["pool"] is None
    assert plain["max_age"] == 60
    pooled = json.loads(
        probe(DEBUG="1", DATABASE_URL=url, DATABASE_POOL_MAX="12").stdout.strip().splitlines()[-1]
    )
    assert pooled["pool"]["max_size"] == 12
    assert pooled["max_age"] == 0  # Django's pool requires it
    sqlite = json.loads(probe(DEBUG="1", DATABASE_POOL_MAX="12").stdout.strip().splitlines()[-1])
    assert sqlite["pool"] is None  # only PostgreSQL pools


def test_the_production_settings_pass_check_deploy() -> None:
    """The settings the README documents for production leave `check --deploy` with nothing to say."""
    env = {
        k: v
        for k, v in os.environ.items()
        # Test-only variables (the test settings' cookie setting, Playwright's async escape hatch) stay out.
        if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE"}
        and k not in {"SECURE_COOKIES", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY="x" * 20 + "a-long-random-production-secret-0123456789",
        SECURE_SSL_REDIRECT="1",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        SECURE_HSTS_PRELOAD="1",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
