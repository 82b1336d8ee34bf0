"""Queue Celery work only after the transaction that made it necessary commits.

The one helper every app uses. Tasks are named, not imported ("scoring.tasks.rescore_lead"): a
service queues its own app's tasks without importing the tasks module that imports the service,
and a name that no task carries fails loudly (KeyError) in tests, not silently in production.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task
from django.db import transaction

from config.celery import app

logger = logging.getLogger(__name__)


def task_named(name: str) -> Task:
    """The registered task `name`; every app's tasks module is imported on first use."""
    if name not in app.tasks:
        app.loader.import_default_modules()  # Celery's autodiscovery of each installed app's tasks.py
    return app.tasks[name]


def enqueue_on_commit(task_name: str, *args: Any) -> None:
    """Send the task after commit; if the broker is down the commit still stands.

    The periodic sweeps find the work from the database later. Django logs a failed robust
    callback by its __qualname__, which functools.partial lacks (it would turn "broker down"
    into an AttributeError), so the callback is a named closure.
    """
    transaction.on_commit(_named_enqueue(task_name, args), robust=True)


def _named_enqueue(task_name: str, args: tuple[Any, ...]) -> Callable[[], None]:
    def enqueue() -> None:
        task_named(task_name).delay(*args)

    enqueue.__qualname__ = f"enqueue {task_name}{args}"
    return enqueue


def enqueue_now(task_name: str, *args: Any) -> bool:
    """Send the task from a periodic sweep; False (logged) while the broker is away.

    The work stays recorded in the database, so the next sweep simply tries again.
    """
    task = task_named(task_name)
    try:
        task.delay(*args)
    except Exception:  # broker still away
        logger.warning("Could not enqueue %s%s; the next sweep retries", task_name, args)
        return False
    return True
