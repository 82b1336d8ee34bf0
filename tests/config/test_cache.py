"""Redis away or hung: the cache falls back to this process, so the chat and reports keep working."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from django.core.cache import caches

from chatbot.api import ChatThrottle, ChatVisitorThrottle
from chatbot.models import Message
from config.cache import FailOpenRedisCache
from demo.site import install_demo_site
from tests.factories import make_manager

pytestmark = pytest.mark.django_db

ORIGIN = "http://127.0.0.1:8000"
ALWAYS_OPEN = {day: [["00:00", "00:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
OPTIONS = {"socket_timeout": 0.3, "socket_connect_timeout": 0.3}


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: connections are refused


@pytest.fixture
def hung_redis() -> Iterator[str]:
    """A port that accepts connections and never answers (a paused Redis looks like this)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def failing_cache(url: str) -> FailOpenRedisCache:
    return FailOpenRedisCache(url, {"OPTIONS": OPTIONS})


@pytest.mark.parametrize("state", ["refused", "hung"])
def test_the_cache_falls_back_to_this_process_and_says_so_once(state, hung_redis, caplog) -> None:
    url = hung_redis if state == "hung" else f"redis://127.0.0.1:{dead_port()}/0"
    cache = failing_cache(url)
    with caplog.at_level(logging.WARNING, logger="config.cache"):
        started = time.monotonic()
        cache.set("k", 1, 60)
        for _ in range(50):
            assert cache.get("k") == 1  # kept in this process meanwhile
        assert cache.add("new", 2) is True
        assert cache.incr("k") == 2
        elapsed = time.monotonic() - started
    assert elapsed < 2  # one timed-out call, then Redis is left alone for a while
    assert [r.getMessage() for r in caplog.records].__len__() == 1
    assert "per-process cache" in caplog.records[0].getMessage()


@pytest.fixture
def site():
    site = install_demo_site()
    site.business_hours = ALWAYS_OPEN
    site.save()
    return site


def post(client, path: str, data: dict, token: str = "") -> object:
    return client.post(
        path, json.dumps(data), content_type="application/json", HTTP_ORIGIN=ORIGIN, HTTP_X_CHAT_TOKEN=token
    )


def test_visitors_keep_chatting_with_redis_down_and_limits_still_count(client, site, monkeypatch) -> None:
    cache = failing_cache(f"redis://127.0.0.1:{dead_port()}/0")
    monkeypatch.setattr(ChatThrottle, "cache", cache)  # every chat limit shares it
    monkeypatch.setattr(ChatVisitorThrottle, "rate", "4/min", raising=False)
    base = f"/api/v1/chat/sites/{site.public_key}/"

    started = post(client, base + "conversations/", {"visitor_id": "visitor-redis-down-1"})
    assert started.status_code == 200, started.content
    token = started.json()["token"]
    codes = [
        post(client, base + "conversation/messages/", {"text": f"Do you deliver? {i}"}, token).status_code
        for i in range(5)
    ]
    assert codes == [200, 200, 200, 200, 429]  # the per-process fallback still limits a flood
    assert Message.objects.filter(conversation__token=token, sender="visitor").count() == 4


def test_manager_reports_render_with_redis_down(client, settings) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.FailOpenRedisCache",
            "LOCATION": f"redis://127.0.0.1:{dead_port()}/0",
            "OPTIONS": OPTIONS,
        }
    }
    assert isinstance(caches["default"], FailOpenRedisCache)
    client.force_login(make_manager())
    assert client.get("/crm/reports/").status_code == 200
    assert client.get("/crm/reports/").status_code == 200
