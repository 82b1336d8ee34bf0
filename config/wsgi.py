"""WSGI entry point (gunicorn config.wsgi)."""

from __future__ import annotations

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
# Django's start-up objects live as long as the worker: moved out of the collector's view, the
# occasional full collection no longer walks ~200k of them in the middle of a request.
gc.freeze()
