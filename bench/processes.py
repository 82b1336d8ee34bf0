"""What the benchmarks' child processes (a Celery worker, uvicorn, gunicorn, forked pools) need."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import quote

from django.conf import settings
from django.core.management.base import CommandError
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


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def uvicorn_server(
    *, workers: int, extra_args: Sequence[str] = (), start_within: float = 120
) -> Iterator[int]:
    """Uvicorn serving config.asgi (bench settings, DEBUG) on a free port, as the chat benches run it;
    yields the port once it accepts connections, stops the whole process group after."""
    port = free_port()
    env = child_env(DJANGO_SETTINGS_MODULE="bench.settings", DEBUG="1")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
            "--ws",
            "websockets-sansio",
            *extra_args,
        ],  # fmt: skip
        env=env,
        cwd=settings.BASE_DIR,
        start_new_session=True,  # its own process group: workers are stopped with it
    )
    try:
        _wait_for(port, server, seconds=start_within)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=5)


def _wait_for(port: int, server: subprocess.Popen[bytes], *, seconds: float) -> None:
    """Until the server accepts connections (a busy machine may take a while to start it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CommandError("The benchmark server exited; run with DEBUG=1 and check the output above.")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise CommandError(f"The benchmark server did not start within {seconds:.0f} s.")
