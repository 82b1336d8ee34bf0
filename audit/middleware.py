"""Request middleware of the audit trail.

- On PostgreSQL, every request runs inside a pghistory context naming the path (never the query
  string), the method and, once the request's user is known, the user: the audit triggers read it
  to say who changed a row. The user is not loaded here (a database outage must still reach the
  views' 503): the context is updated when something first reads `request.user`, or when DRF's
  token authentication sets it in the view.
- A 403 or 404 answered to a logged-in user under the audited paths is recorded as a refused
  access: who, which path (no query string), when.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pghistory
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.wsgi import WSGIRequest
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from audit import services
from audit.models import Action

logger = logging.getLogger(__name__)

LEAD_PATH = re.compile(r"^/(?:crm|api/v1)/leads/(\d+)/")
REFUSED_STATUSES = (403, 404)
DEFAULT_REFUSED_PREFIXES = ("/crm/", "/api/v1/leads", "/scoring/", "/ml/", "/chat/", "/audit/", "/admin/")
TRACKED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _note_user(user: Any) -> Any:
    """Put `user` into the open pghistory context (a no-op outside one)."""
    if user is not None and getattr(user, "is_authenticated", False):
        pghistory.context(user=user.pk, username=user.get_username())
    return user


def _resolve(lazy: SimpleLazyObject) -> Any:
    if lazy._wrapped is empty:  # type: ignore[attr-defined]
        lazy._setup()  # type: ignore[attr-defined]
    return lazy._wrapped  # type: ignore[attr-defined]


def _tracked(user: Any) -> Any:
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:  # type: ignore[attr-defined]
        return SimpleLazyObject(lambda: _note_user(_resolve(user)))
    return _note_user(user)


class _TracksUser:
    """A request that tells the pghistory context who its user is, whenever that is set."""

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr == "user":
            value = _tracked(value)
        super().__setattr__(attr, value)


class _WSGIRequest(_TracksUser, WSGIRequest):
    pass


class _ASGIRequest(_TracksUser, ASGIRequest):
    pass


class AuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.prefixes = tuple(getattr(settings, "AUDIT_REFUSED_PATH_PREFIXES", DEFAULT_REFUSED_PREFIXES))

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # pghistory prefixes each write with a PostgreSQL set_config(): SQLite has no triggers to read it.
        if connection.vendor == "postgresql" and request.method in TRACKED_METHODS:
            with pghistory.context(user=None, username=None, url=request.path, method=request.method):
                if isinstance(request, WSGIRequest):
                    request.__class__ = _WSGIRequest
                elif isinstance(request, ASGIRequest):
                    request.__class__ = _ASGIRequest
                if hasattr(request, "user"):  # set by AuthenticationMiddleware, lazily
                    request.user = request.user
                response = self.get_response(request)
        else:
            response = self.get_response(request)
        if response.status_code in REFUSED_STATUSES:
            self.record_refusal(request, response)
        return response

    def record_refusal(self, request: HttpRequest, response: HttpResponse) -> None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not request.path.startswith(self.prefixes):
            return
        match = LEAD_PATH.match(request.path)
        try:
            services.record(
                user,
                Action.REFUSED,
                services.LEAD_TYPE if match else "url",
                match.group(1) if match else "",
                summary=f"Answered {response.status_code}",
                request=request,
            )
        except DatabaseError:
            # The refusal itself stands; losing its audit row must not turn it into a 500.
            logger.exception("Could not record a refused access in the audit trail")
