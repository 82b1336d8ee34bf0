"""Queue Celery work only after the transaction that made it necessary commits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_on_commit(task: Any, *args: Any) -> None:
    """Send `task.delay(*args)` after commit; if the broker is down the commit still stands.

    The periodic sweeps find the work from the database later. Django logs a failed robust
    callback by its __qualname__, which functools.partial lacks (it would turn "broker down"
    into an AttributeError), so the callback is a named closure.
    """
    transaction.on_commit(_named_enqueue(task, args), robust=True)


def _named_enqueue(task: Any, args: tuple[Any, ...]) -> Callable[[], None]:
    def enqueue() -> None:
        task.delay(*args)

    enqueue.__qualname__ = f"enqueue {getattr(task, 'name', task)}{args}"
    return enqueue


def enqueue_now(task: Any, *args: Any) -> bool:
    """Send `task.delay(*args)` from a periodic sweep; False (logged) while the broker is away.

    The work stays recorded in the database, so the next sweep simply tries again.
    """
    try:
        task.delay(*args)
    except Exception:  # broker still away
        logger.warning("Could not enqueue %s%s; the next sweep retries", getattr(task, "name", task), args)
        return False
    return True
