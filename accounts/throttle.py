"""Brute-force limits: the client address every limit uses, the login lockout page, API token failures.

Logins are limited by django-axes (settings: LOGIN_FAILURE_LIMIT, LOGIN_COOLOFF_MINUTES): a few
failures for one username from one address lock that pair out for the cool-off period. Another
address (the real user at their desk) is not affected, and the lock lifts by itself.
"""

from __future__ import annotations

from typing import Any

from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.throttling import BaseThrottle

_ident = BaseThrottle()


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, read exactly as the API's rate limits read it (REST_FRAMEWORK NUM_PROXIES,
    set by TRUSTED_PROXIES): the socket address unless you run that many proxies of your own."""
    ip = _ident.get_ident(request)  # type: ignore[arg-type]
    return (str(ip).strip() or None) if ip else None  # None: no address (e.g. force_login in tests)


def login_locked_out(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """The login page again, saying why it refuses and what to do next (axes' AXES_LOCKOUT_CALLABLE)."""
    cool_off = get_cool_off(request)  # what axes enforces (settings.LOGIN_COOLOFF_MINUTES)
    minutes = max(1, round(cool_off.total_seconds() / 60)) if cool_off else settings.LOGIN_COOLOFF_MINUTES
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "locked_out": True,
        "cooloff_minutes": minutes,
        "next": request.POST.get("next", ""),
    }
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response


# --- API tokens ---------------------------------------------------------------------------------


def _failures_key(ip: str | None) -> str:
    return f"accounts:token-failures:{ip}"


def token_failures_exceeded(request: HttpRequest) -> bool:
    """True while this address has sent too many bad API tokens in the current window."""
    return int(cache.get(_failures_key(client_ip(request))) or 0) >= settings.API_TOKEN_FAILURE_LIMIT


def note_token_failure(request: HttpRequest) -> None:
    """Count one bad token from this address; the window starts at the first failure."""
    key = _failures_key(client_ip(request))
    if cache.add(key, 1, timeout=settings.API_TOKEN_FAILURE_WINDOW_SECONDS):
        return
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=settings.API_TOKEN_FAILURE_WINDOW_SECONDS)
