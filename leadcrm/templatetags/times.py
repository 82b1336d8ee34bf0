"""Labelled times: which zone a shown time is in, and a lead's own local time (docs/dashboard.md)."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from django import template
from django.utils import dateformat, timezone

register = template.Library()


@register.simple_tag
def current_zone() -> str:
    """The zone this page's times are shown in (the reader's), e.g. "Europe/Paris"."""
    return timezone.get_current_timezone_name()


@register.filter
def zone_abbr(value: datetime | None) -> str:
    """The reader's zone's short name at that moment ("CET", "CEST", "UTC"): a label for a time."""
    if value is None:
        return ""
    return timezone.localtime(value).tzname() or timezone.get_current_timezone_name()


@register.simple_tag
def their_time(zone_name: str, now: datetime | None = None, fmt: str = "D H:i") -> str:
    """A lead's local time, labelled with their zone: "Mon 10:42 their time (Europe/Paris, CET)",
    or that their zone is unknown. Formatted in their zone, not converted to the reader's."""
    if not zone_name:
        return "their time zone is unknown"
    try:
        zone = zoneinfo.ZoneInfo(zone_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "their time zone is unknown"
    local = (now or timezone.now()).astimezone(zone)
    return f"{dateformat.format(local, fmt)} their time ({zone_name}, {local.tzname()})"
