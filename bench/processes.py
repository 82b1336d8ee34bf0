"""What the benchmarks' child processes (a Celery worker, uvicorn, gunicorn, forked pools) need."""

from __future__ import annotations

import os
from urllib.parse import quote

from django.conf import settings
from django.db import connections


def configured_database_url() -> str:
    """The URL of the database this process uses (under pytest: the test database, not the env's)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else "")
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    """This environment for a child process, pointed at the same database as this one."""
    return {**os.environ, "DATABASE_URL": configured_database_url(), **extra}


def forget_inherited_connections() -> None:
    """In a forked child: drop the parent's database connections WITHOUT closing them.

    Closing would send PostgreSQL a Terminate on the socket the parent still uses, and the parent's
    next query would fail with "server closed the connection unexpectedly".
    """
    for conn in connections.all(initialized_only=True):
        conn.connection = None
