"""Shared fixtures. Tasks run eagerly unless a test asks for the real worker (`celery_worker_real`)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlparse

import pytest
from django.conf import settings

from config import on_commit
from config.celery import app as celery_app

# Playwright's sync API keeps an event loop in the test thread; Django's ORM in the same thread
# is still synchronous and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _eager_celery() -> Iterator[None]:
    """Unit tests run tasks in-process; integration tests switch this off with a real worker."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = True
    on_commit.forget_publisher()  # a test's broker outage must not carry over to the next test


def redis_reachable() -> bool:
    if not settings.REDIS_URL:
        return False
    url = urlparse(settings.REDIS_URL)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def celery_worker_real(transactional_db: None) -> Iterator[object]:
    """A real Celery worker (threads) consuming from the real Redis broker, on a queue of its own."""
    if not redis_reachable():
        pytest.skip("needs REDIS_URL pointing at a reachable Redis (CI sets it)")
    from celery.contrib.testing.worker import start_worker

    queue = f"test-{os.getpid()}"
    old_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    celery_app.conf.task_always_eager = False
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue) if _queue_exists(conn, queue) else None
    try:
        with start_worker(
            celery_app,
            pool="threads",
            concurrency=2,
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=10,
            queues=[queue],
        ) as worker:
            yield worker
    finally:
        celery_app.conf.task_default_queue = old_queue
        celery_app.conf.task_always_eager = True


def _queue_exists(conn: object, queue: str) -> bool:
    try:
        conn.default_channel.queue_declare(queue=queue, passive=True)  # type: ignore[attr-defined]
        return True
    except Exception:
        return False


@pytest.fixture
def manager(db: None):
    from tests.factories import make_manager

    return make_manager("boss")


@pytest.fixture
def salesperson(db: None):
    from tests.factories import make_user

    return make_user("seller")


@pytest.fixture
def other_salesperson(db: None):
    from tests.factories import make_user

    return make_user("rival")


@dataclass
class OwnRedis:
    """A Redis server of the test's own, to stop, pause and restart on purpose."""

    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH (Debian's redis-server package)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis = OwnRedis(port)
    redis.start()
    try:
        yield redis
    finally:
        if redis.process is not None:
            redis.resume()
        redis.stop()


@contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Publish to `url` for the duration (tasks are sent, not run in-process)."""
    from config.on_commit import publisher

    old = celery_app.conf.broker_url
    celery_app.conf.broker_url = url
    celery_app.conf.task_always_eager = False
    celery_app._after_fork()  # drop pooled connections to the previous broker
    try:
        yield
    finally:
        publisher().wait_idle(timeout=15)
        celery_app.conf.broker_url = old
        celery_app.conf.task_always_eager = True
        celery_app._after_fork()
