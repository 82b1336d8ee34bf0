"""The Celery app: configured from Django settings (CELERY_*), tasks found in each app's tasks.py."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

from celery import Celery, bootsteps
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("leadcrm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _freeze_startup_objects(**_: object) -> None:
    """Keep the cyclic GC from rescanning what lives as long as the worker (modules, models).

    A scoring batch allocates hundreds of thousands of short-lived objects; without this, each
    full collection also walks Django, numpy, pandas and scikit-learn.
    """
    gc.freeze()


class AliveFile(bootsteps.StartStopStep):
    """Liveness for a supervisor: touch a file every few seconds while connected to the broker.

    Set WORKER_ALIVE_FILE in the worker's environment and have the supervisor restart the worker
    when the file is older than a minute (deploy/systemd/ does). A worker that exited, hangs,
    or lost the broker for good stops touching it.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)
    INTERVAL_S = 5.0

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        configured = os.environ.get("WORKER_ALIVE_FILE", "")
        self.path = Path(configured) if configured else None
        self.timer_ref: Any = None

    def start(self, parent: Any) -> None:
        if self.path is not None:
            self.touch(parent)
            self.timer_ref = parent.timer.call_repeatedly(self.INTERVAL_S, self.touch, (parent,), priority=10)

    def stop(self, parent: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def touch(self, parent: Any) -> None:
        connection = parent.connection
        if self.path is not None and connection is not None and connection.connected:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()


app.steps["consumer"].add(AliveFile)
