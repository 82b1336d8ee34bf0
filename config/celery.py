"""The Celery app: configured from Django settings (CELERY_*), tasks found in each app's tasks.py."""

from __future__ import annotations

import gc
import os

from celery import Celery
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
