"""Times in the reader's zone: their profile's zone, else their browser's, activated per request.

The zone is read from the session, so a page costs no extra query: it is put there at login (from
the StaffProfile) and when the user saves the profile page. Without a profile zone, the `tz` cookie
that static/accounts/time_zone.js sets from the browser (Intl) is used, once validated. Every page
says which zone its times are in (base.html, `{% current_zone %}`).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from functools import cache
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from leadcrm.models import StaffProfile

SESSION_KEY = "staff_timezone"  # the profile's zone ("" when it has none), set at login and on save
COOKIE_NAME = "tz"  # the browser's zone (IANA name), set by static/accounts/time_zone.js


@cache
def zone_names() -> frozenset[str]:
    """Every IANA zone name this server knows (Europe/Paris, America/New_York, UTC…)."""
    return frozenset(zoneinfo.available_timezones())


def valid_zone(name: Any) -> str:
    """`name` if it is a known zone name, else "" (a cookie is the browser's word, not trusted)."""
    return name if isinstance(name, str) and name in zone_names() else ""


def zone_for(request: HttpRequest) -> str:
    """The zone to show this request's times in: the profile's, the browser's, or "" (the default).

    Only the session is read, never request.user: no user query on requests that need none (the
    key is set at login and goes with the session at logout)."""
    session = getattr(request, "session", None)
    chosen = valid_zone(session.get(SESSION_KEY, "")) if session is not None else ""
    return chosen or valid_zone(request.COOKIES.get(COOKIE_NAME, ""))


def remember_profile_zone(request: HttpRequest, zone: str) -> None:
    """Keep the profile's zone in the session (the middleware reads it there, without a query)."""
    request.session[SESSION_KEY] = zone


@receiver(user_logged_in, dispatch_uid="accounts.time_zones.on_login")
def _on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None or not hasattr(request, "session"):
        return
    zone = StaffProfile.objects.filter(user=user).values_list("timezone", flat=True).first() or ""
    remember_profile_zone(request, zone)


class TimeZoneMiddleware:
    """Activate the reader's zone for the request (templates, forms and localtime() use it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = zone_for(request)
        if zone:
            timezone.activate(zoneinfo.ZoneInfo(zone))
        else:
            timezone.deactivate()  # the default zone (settings.TIME_ZONE, UTC), labelled as such
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
