"""Errors a client should read, not a 500: a database that is away answers 503 with Retry-After
(JSON under /api/), and an API body over the size limit answers 413 with the limit.

Two places catch it: a middleware for errors raised in views (every page reads the database there),
and the 500 handler for errors raised elsewhere (a session saved after the view, with DEBUG off).
Neither touches the database, templates with context processors, or anything that could fail the
same way again.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape
from django.views import defaults

logger = logging.getLogger(__name__)

DATABASE_AWAY = (OperationalError, InterfaceError)
RETRY_AFTER_S = 10
_last_logged = 0.0

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>LeadCRM is unavailable</title>
<link rel="stylesheet" href="{static}css/app.css">
</head><body><main class="narrow"><h1>LeadCRM is briefly unavailable</h1>
<p>{message} Nothing you saved before is lost. Try again in {seconds} seconds.</p>
<p><a href="{path}">Try again</a></p></main></body></html>"""


def is_database_away(exc: BaseException | None) -> bool:
    """A connection-level failure: refused, dropped, timed out, or no pooled connection in time."""
    return isinstance(exc, DATABASE_AWAY)


def unavailable(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """The 503 for a request that met a database outage; logs one line per 10 s, not per request."""
    global _last_logged
    if time.monotonic() - _last_logged > RETRY_AFTER_S:
        _last_logged = time.monotonic()
        logger.error("Database unavailable (%s: %s); answering 503", type(exc).__name__, exc)
    message = "The database is not answering right now."
    response: HttpResponse
    if request.path.startswith("/api/") or request.path == "/healthz":
        response = JsonResponse(
            {"detail": f"{message} Retry after {RETRY_AFTER_S} seconds.", "ok": False}, status=503
        )
    else:
        response = HttpResponse(
            PAGE.format(
                message=message,
                seconds=RETRY_AFTER_S,
                path=escape(request.get_full_path()),
                static=escape(
                    settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/" + settings.STATIC_URL
                ),
            ),
            status=503,
        )
    response["Retry-After"] = str(RETRY_AFTER_S)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    """Turns a database outage raised in a view into a 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_database_away(exception):
            return unavailable(request, exception)
        if isinstance(exception, RequestDataTooBig) and request.path.startswith("/api/"):
            return too_large()
        return None


def too_large() -> JsonResponse:
    """413 for an API body over DATA_UPLOAD_MAX_MEMORY_SIZE, saying what the limit is."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
    return JsonResponse(
        {
            "detail": f"Request body too large: the limit is {limit / 1_000_000:.1f} MB. Send fewer items per request."
        },
        status=413,
    )


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: an API client gets JSON like every other API error, not an HTML page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found. Check the path against /api/v1/schema/."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a database outage outside the view still answers 503."""
    exc = sys.exc_info()[1]
    if exc is not None and is_database_away(exc):
        return unavailable(request, exc)
    return defaults.server_error(request)
