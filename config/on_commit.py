"""Queue Celery work only after the transaction that made it necessary commits.

The one helper every app uses. Two promises:
- **The database is the outbox.** Every service records what needs doing (a rescore request, a
  queued run) in its own transaction; the task is only a nudge. A nudge that never arrives is
  caught up by the periodic sweeps, so losing one delays work, never loses it.
- **A request waits on the broker at most once per outage, and briefly.** While the broker
  answers, a nudge is sent in line (the fastest path: no thread hand-off). A send that fails, be
  it refused at once or timed out after the socket timeout (1 s), switches this process to a
  background publisher thread: from then on requests hand their nudges over and never wait; the
  thread pauses `PAUSE_AFTER_FAILURE` seconds after each failure, says so once per outage (not
  once per event), and switches back to in-line sends when one succeeds.

Tasks are named, not imported ("scoring.tasks.rescore_lead"): a service queues its own app's tasks
without importing the tasks module that imports the service, and a name no task carries fails
loudly (KeyError) in tests, not silently in production.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from celery import Task
from django.core.cache import cache
from django.db import transaction
from django.utils.module_loading import autodiscover_modules

from config.celery import app

logger = logging.getLogger(__name__)

PAUSE_AFTER_FAILURE = 5.0  # seconds without publishing once the broker failed; the sweep runs meanwhile
MAX_PENDING = 10_000  # nudges waiting for the publisher; past that they are dropped (the sweep has them)


def task_named(name: str) -> Task:
    """The registered task `name`; every app's tasks module is imported on first use."""
    if name not in app.tasks:
        autodiscover_modules("tasks")  # each installed app's tasks.py, as the worker imports them
    return app.tasks[name]


def enqueue_on_commit(task_name: str, *args: Any) -> None:
    """Send the task after commit, without making the request wait for the broker.

    Django logs a failed robust callback by its __qualname__, which functools.partial lacks, so the
    callback is a named closure; it never raises (the publisher reports failures itself).
    """
    task_named(task_name)  # an unknown name fails here, in the caller's test, not later in a thread
    transaction.on_commit(_named_enqueue(task_name, args), robust=True)


def _named_enqueue(task_name: str, args: tuple[Any, ...]) -> Callable[[], None]:
    def enqueue() -> None:
        if app.conf.task_always_eager:
            task_named(task_name).delay(*args)  # the embedded shape and unit tests: run it here, now
        else:
            publisher().send(task_name, args)

    enqueue.__qualname__ = f"enqueue {task_name}{args}"
    return enqueue


def enqueue_once_on_commit(task_name: str, *, key: str, seconds: float, countdown: float = 0.0) -> None:
    """After commit, send `task_name` unless one is already on its way: a cache key (`key`, for
    `seconds`) coalesces the nudges of many transactions into one task, which a worker starts
    `countdown` seconds later (the commits of that window share it). The task must call
    `nudge_received(key)` before it reads the database, so that a transaction committing after
    that read sends a fresh nudge. A cache that fails sends the nudge anyway (the task is
    idempotent); a lost nudge is caught up by the task's periodic sweep."""
    task_named(task_name)

    def enqueue_once() -> None:
        try:
            first = cache.add(key, 1, timeout=seconds)
        except Exception:  # the cache (Redis) is away: better one task too many than none
            first = True
        if not first:
            return
        sender = publisher()
        if countdown and not app.conf.task_always_eager and not sender.in_background:
            try:
                task_named(task_name).apply_async(countdown=countdown)
                return
            except Exception as exc:  # the broker failed: the publisher's outage handling takes over
                sender._failed(exc)
        _named_enqueue(task_name, ())()

    enqueue_once.__qualname__ = f"enqueue once {task_name}"
    transaction.on_commit(enqueue_once, robust=True)


def enqueue_later_on_commit(task_name: str, *args: Any, countdown: float) -> None:
    """After commit, send the task for a worker to start `countdown` seconds later: a timer whose
    loss is harmless because a periodic sweep does the same work (the database is the outbox).
    Sent in line only while the broker answers; during an outage (or with eager tasks, which
    cannot wait) nothing is sent and the sweep does it."""
    task_named(task_name)

    def enqueue_later() -> None:
        sender = publisher()
        if app.conf.task_always_eager or sender.in_background:
            return
        try:
            task_named(task_name).apply_async(args, countdown=countdown)
        except Exception as exc:  # the broker failed: the publisher's outage handling takes over
            sender._failed(exc)

    enqueue_later.__qualname__ = f"enqueue later {task_name}{args}"
    transaction.on_commit(enqueue_later, robust=True)


def nudge_received(key: str) -> None:
    """The coalesced task started: later commits may nudge again (see enqueue_once_on_commit)."""
    try:
        cache.delete(key)
    except Exception:  # the key expires by itself
        logger.warning("Could not clear the nudge key %s; it expires by itself", key)


def enqueue_now(task_name: str, *args: Any) -> bool:
    """Send the task from a periodic sweep; False (logged) while the broker is away.

    The work stays recorded in the database, so the next sweep simply tries again.
    """
    task = task_named(task_name)
    try:
        task.delay(*args)
    except Exception as exc:  # broker still away
        logger.warning("Could not enqueue %s%s (%s); the next sweep retries", task_name, args, exc)
        return False
    return True


class Publisher:
    """Sends nudges in line while the broker answers, through a daemon thread while it does not."""

    def __init__(self) -> None:
        self.pending: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue(maxsize=MAX_PENDING)
        self.in_background = False  # set after a failed send, cleared by the next good one
        self.paused_until = 0.0
        self.failing_since: float | None = None
        self.dropped = 0
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def send(self, task_name: str, args: tuple[Any, ...]) -> None:
        if self.in_background:
            self.submit(task_name, args)
            return
        try:
            task_named(task_name).delay(*args)
        except Exception as exc:
            self._failed(exc)
            self._drop(1, "")

    def submit(self, task_name: str, args: tuple[Any, ...]) -> None:
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="broker-publisher", daemon=True)
                self.thread.start()
        try:
            self.pending.put_nowait((task_name, args))
        except queue.Full:
            self._drop(1, "the publisher's queue is full")

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every handed-over nudge was sent or dropped (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def _run(self) -> None:
        while True:
            task_name, args = self.pending.get()
            try:
                self._publish(task_name, args)
            finally:
                self.pending.task_done()

    def _publish(self, task_name: str, args: tuple[Any, ...]) -> None:
        if time.monotonic() < self.paused_until:
            self._drop(1, "")
            return
        try:
            task_named(task_name).delay(*args)
        except Exception as exc:
            self._failed(exc)
            self._drop(1, "")
            return
        if self.failing_since is not None:
            logger.warning(
                "Broker reachable again after %.0f s; %d nudges were left to the sweep",
                time.monotonic() - self.failing_since,
                self.dropped,
            )
        self.failing_since = None
        self.dropped = 0
        self.in_background = False

    def _failed(self, exc: Exception) -> None:
        self.paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        self.in_background = True
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            # One line per outage, not a traceback per event: the rows are already committed.
            logger.warning(
                "Broker unreachable (%s: %s); tasks are not sent for now and the periodic "
                "sweep scores the waiting leads from the database",
                type(exc).__name__,
                exc,
            )

    def _drop(self, count: int, reason: str) -> None:
        self.dropped += count
        if reason and self.dropped == count:
            logger.warning("Not sending tasks (%s); the periodic sweep catches up", reason)


_publisher: Publisher | None = None
_publisher_lock = threading.Lock()


def publisher() -> Publisher:
    """This process's publisher (a forked child starts its own: threads do not survive fork)."""
    global _publisher
    with _publisher_lock:
        if _publisher is None or _publisher.pid != os.getpid():
            _publisher = Publisher()
        return _publisher


def forget_publisher() -> None:
    """Start afresh: the next send is in line again (tests; the old thread idles out unused)."""
    global _publisher
    with _publisher_lock:
        if _publisher is not None:
            _publisher.wait_idle(timeout=15)
        _publisher = None
