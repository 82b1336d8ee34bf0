"""Queue Celery work only after the transaction that made it necessary commits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction


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
