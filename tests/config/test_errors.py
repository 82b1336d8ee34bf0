"""A database outage answers 503 with Retry-After quickly (JSON on the API), never a hang or a 500."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_database() -> Iterator[int]:
    """A port that accepts connections and never says a word (a hung or firewalled server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def serve(database_port: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{database_port}/leadcrm",
        "DATABASE_CONNECT_TIMEOUT": "1",
        "SECRET_KEY": "test-only",
        "DEBUG": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "4", "--log-level", "warning",
         # The app is imported before the port opens, so the timings below measure the outage
         # handling, not Django's start-up on a loaded machine.
         "--preload"],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError("gunicorn did not start")


def get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = response.read().decode()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body, time.monotonic() - started


@pytest.mark.parametrize("outage", ["refused", "silent"])
def test_pages_api_and_health_answer_503_while_the_database_is_away(outage, silent_database) -> None:
    database_port = silent_database if outage == "silent" else free_port()
    proc, port = serve(database_port)
    try:
        health = get(port, "/healthz")
        page = get(port, "/crm/", {"Cookie": "sessionid=abcdefghijklmnopqrstuvwxyz123456"})
        api = get(port, "/api/v1/leads/", {"Authorization": "Bearer lcrm_0123456789_" + "x" * 43})
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    for status, headers, _, seconds in (health, page, api):
        assert status == 503
        assert headers["retry-after"].isdigit()
        assert seconds < 5  # a connect timeout of 1 s, not the OS's minutes
    assert json.loads(health[2])["ok"] is False
    assert "Try again" in page[2]
    assert api[1]["content-type"].startswith("application/json")
    assert "Retry after" in json.loads(api[2])["detail"]


@pytest.mark.django_db
def test_an_oversized_api_body_is_a_json_413_naming_the_limit(client, settings) -> None:
    from tests.factories import make_manager

    client.force_login(make_manager())
    body = json.dumps(
        {"first_name": "Ada", "custom": {"blob": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}}
    )
    response = client.post("/api/v1/leads/", body, content_type="application/json")
    assert response.status_code == 413
    assert "the limit is 2.6 MB" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_an_unknown_api_path_answers_json_404(client, settings, debug) -> None:
    settings.DEBUG = debug
    response = client.get("/api/v1/no-such-thing/a/b/")
    assert response.status_code == 404
    if not debug:  # with DEBUG on Django shows its own technical 404 page
        assert response["Content-Type"] == "application/json"
        assert "schema" in response.json()["detail"]
    assert client.get("/no-such-page/").status_code == 404
