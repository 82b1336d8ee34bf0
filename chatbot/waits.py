"""The honest wait a visitor is told when asking for a person, and whether a person is there at all.

"Usually replies in about 2 minutes" comes from the site's own recent hand-offs: the median time
from hand-off to the first agent message, over the last SAMPLE_SIZE answered hand-offs of the
last WINDOW that happened within the site's business hours (a chat handed off at night and
answered next morning says nothing about the wait in hours). With fewer than MIN_SAMPLES the
visitor is told no number at all rather than an invented one.

One query: PostgreSQL computes the median itself (percentile_cont); other databases (SQLite, the
demo's) fetch the at most SAMPLE_SIZE pairs of that same query and take the median here. The
figure is cached per site for CACHE_SECONDS.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import ExtractHour, ExtractIsoWeekDay, ExtractMinute

from chatbot import bot
from chatbot.models import Conversation, Message, Sender, Site
from leadcrm import routing

WINDOW = timedelta(days=14)
SAMPLE_SIZE = 50
MIN_SAMPLES = 5
CACHE_SECONDS = 60


@dataclass(frozen=True)
class UsualWait:
    """The median seconds from hand-off to first agent reply (None: too few answered hand-offs)."""

    seconds: float | None
    samples: int

    @property
    def phrase(self) -> str:
        return wait_phrase(self.seconds)


class Median(Aggregate):
    """PostgreSQL's median of an interval, in seconds."""

    function = "percentile_cont"
    name = "Median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM %(expressions)s))"
    output_field = FloatField()


# --- Pure parts ------------------------------------------------------------------------------------


def median_seconds(waits: Iterable[float], *, min_samples: int = MIN_SAMPLES) -> float | None:
    """The median of `waits` (seconds), or None with fewer than `min_samples` of them."""
    values = [float(w) for w in waits if w is not None and w >= 0]
    if len(values) < min_samples:
        return None
    return float(statistics.median(values))


def wait_phrase(seconds: float | None) -> str:
    """A humane rounding to finish "Our team usually replies …": "in about 2 minutes", "within
    the hour"; "" when there is no figure (or it is too long to be worth promising)."""
    if seconds is None:
        return ""
    minutes = seconds / 60
    if seconds < 60:
        return "in under a minute"
    if seconds < 90:
        return "in about a minute"
    if minutes < 10:
        return f"in about {round(minutes)} minutes"
    if minutes < 45:
        return f"in about {5 * round(minutes / 5)} minutes"
    if minutes <= 60:
        return "within the hour"
    if minutes <= 4 * 60:
        return "within a few hours"
    if minutes <= 24 * 60:
        return "within a day"
    return ""


def in_hours_condition(business_hours: dict[str, Any], *, weekday: str, minute: str) -> Q:
    """A filter true when the annotations `weekday` (ISO, Monday = 1) and `minute` (of the day, in
    the site's zone) fall within `business_hours`; nothing matches for a site that never opens."""
    condition = Q(pk__in=[])
    for day in range(7):
        for start, end in bot._spans(business_hours, day):
            condition |= Q(**{weekday: day + 1, f"{minute}__gte": start, f"{minute}__lt": end})
    return condition


# --- The query -------------------------------------------------------------------------------------


def answered_handoffs(site: Site, *, now: datetime) -> QuerySet[Conversation]:
    """The site's last SAMPLE_SIZE hand-offs of the last WINDOW, within business hours, that an
    agent answered, annotated with `reply_at` and `wait` (reply_at - handoff_at)."""
    zone = ZoneInfo(site.timezone)
    first_reply = (
        Message.objects.filter(
            conversation=OuterRef("pk"), sender=Sender.AGENT, created_at__gte=OuterRef("handoff_at")
        )
        .order_by("created_at", "id")
        .values("created_at")[:1]
    )
    return (
        Conversation.objects.filter(site=site, handoff_at__gte=now - WINDOW, handoff_at__lte=now)
        .annotate(
            reply_at=Subquery(first_reply),
            handoff_weekday=ExtractIsoWeekDay("handoff_at", tzinfo=zone),
            handoff_minute=ExtractHour("handoff_at", tzinfo=zone) * 60
            + ExtractMinute("handoff_at", tzinfo=zone),
        )
        .filter(reply_at__isnull=False)
        .filter(in_hours_condition(site.business_hours, weekday="handoff_weekday", minute="handoff_minute"))
        .annotate(wait=ExpressionWrapper(F("reply_at") - F("handoff_at"), output_field=DurationField()))
        .order_by("-handoff_at", "-id")[:SAMPLE_SIZE]
    )


def compute_usual_wait(site: Site, *, now: datetime, in_database: bool | None = None) -> UsualWait:
    """The site's usual wait now, from one query (see the module's docstring)."""
    rows = answered_handoffs(site, now=now)
    if in_database is None:
        in_database = connection.vendor == "postgresql"
    if in_database:
        figures = rows.aggregate(median=Median("wait"), samples=Count("pk"))
        samples = int(figures["samples"] or 0)
        median = figures["median"] if samples >= MIN_SAMPLES else None
        return UsualWait(float(median) if median is not None else None, samples)
    # reply_at is the query's annotation, which django-stubs cannot see through the slice.
    pairs: Sequence[tuple[datetime, datetime]] = list(rows.values_list("handoff_at", "reply_at"))  # type: ignore[misc]
    waits = [(reply_at - handoff_at).total_seconds() for handoff_at, reply_at in pairs]
    return UsualWait(median_seconds(waits), len(waits))


def usual_wait(site: Site, *, now: datetime) -> UsualWait:
    """The site's usual wait, cached per site for CACHE_SECONDS."""
    key = f"chat:usual-wait:{site.pk}"
    cached = cache.get(key)
    if isinstance(cached, tuple) and len(cached) == 2:
        return UsualWait(*cached)
    wait = compute_usual_wait(site, now=now)
    cache.set(key, (wait.seconds, wait.samples), CACHE_SECONDS)
    return wait


def live_agents(site: Site, *, now: datetime) -> bool:
    """A person can answer a chat now: the site is open and someone is on duty."""
    return site.is_open(now) and routing.anyone_on_duty()
