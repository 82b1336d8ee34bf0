"""Manager reports: conversion by source, grade and score decile, time to convert, the funnel,
weekly trends and figures per salesperson.

Each report is one SQL aggregate (GROUP BY in the database, never a loop over leads), so they stay
usable on a million leads. Conversion rate = won ÷ closed-as-won-or-lost: leads still open have
no outcome yet and would only dilute the rate.

A closed lead is ranked by its score as it stood *before* the outcome (its last score-history row
taken before `closed_at`), as the model page does: today's score includes the activity that came
with or after the outcome (the call that won it, the lost-reason note), which would make any
grade look predictive after the fact. Open leads have no outcome, so their current score is used.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Avg,
    Case,
    CharField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    When,
    Window,
)
from django.db.models.functions import Ntile, TruncWeek
from django.utils import timezone

from leadcrm import signals
from leadcrm.models import FollowUp, Lead, LeadSource, LeadStatus

PERIODS = {"30": 30, "90": 90, "365": 365, "all": None}
WON = Q(status=LeadStatus.WON)
CLOSED_WON_OR_LOST = Q(status__in=(LeadStatus.WON, LeadStatus.LOST))
OUTCOMES = (LeadStatus.WON, LeadStatus.LOST, LeadStatus.DISQUALIFIED)
NOT_SCORED_BEFORE = "not scored before the outcome"


@dataclass(frozen=True)
class ConversionRow:
    label: str
    leads: int
    won: int
    lost: int
    avg_days_to_win: float | None = None

    @property
    def closed(self) -> int:
        return self.won + self.lost

    @property
    def rate(self) -> float | None:
        return self.won / self.closed if self.closed else None


def leads_in_period(period: str, *, now: datetime | None = None) -> QuerySet[Lead]:
    """Leads created in the last N days ("all" for every lead)."""
    days = PERIODS[period]
    leads = Lead.objects.all()
    if days is not None:
        leads = leads.filter(created_at__gte=(now or timezone.now()) - timedelta(days=days))
    return leads


def _days(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return round(value.total_seconds() / 86400, 1)
    return round(float(value) / 86_400_000_000, 1)  # SQLite hands back microseconds


def by_source(leads: QuerySet[Lead]) -> list[ConversionRow]:
    """Conversion rate and average days from creation to a win, per lead source."""
    to_win = ExpressionWrapper(F("closed_at") - F("created_at"), output_field=DurationField())
    rows = (
        leads.order_by()
        .values("source")
        .annotate(
            n=Count("id"),
            won=Count("id", filter=WON),
            lost=Count("id", filter=Q(status=LeadStatus.LOST)),
            to_win=Avg(to_win, filter=WON & Q(closed_at__isnull=False)),
        )
    )
    labels = dict(LeadSource.choices)
    result = [
        ConversionRow(labels.get(r["source"], r["source"]), r["n"], r["won"], r["lost"], _days(r["to_win"]))
        for r in rows
    ]
    return sorted(result, key=lambda r: (-(r.rate or 0), -r.leads))


def with_score_before_outcome(leads: QuerySet[Lead]) -> QuerySet[Any]:
    """`leads` annotated with `grade_then` and `priority_then`: a closed lead's last scores taken
    before it closed (NULL when it was never scored before then), an open lead's current ones."""
    # The score history belongs to scoring; the CRM core reads it through the reverse relation
    # (as the lead panel's trend line does) rather than importing the higher layer.
    history = cast(Any, Lead._meta.get_field("score_snapshots").related_model)._default_manager
    before = history.filter(lead=OuterRef("pk"), taken_at__lt=OuterRef("closed_at")).order_by("-taken_at")
    closed = Q(status__in=OUTCOMES)
    return leads.annotate(
        grade_then=Case(
            When(closed, then=Subquery(before.values("grade")[:1])),
            default=F("grade"),
            output_field=CharField(),
        ),
        priority_then=Case(
            When(closed, then=Subquery(before.values("priority")[:1])),
            default=F("priority"),
            output_field=FloatField(),
        ),
    )


def by_grade(leads: QuerySet[Lead]) -> list[ConversionRow]:
    """Conversion per grade (A2…) as it stood before the outcome; leads without one show as "ungraded"."""
    rows = (
        with_score_before_outcome(leads.order_by())
        .values("grade_then")
        .annotate(
            n=Count("id"),
            won=Count("id", filter=WON),
            lost=Count("id", filter=Q(status=LeadStatus.LOST)),
        )
        .order_by("grade_then")
    )
    result = []
    for r in rows:
        label = "ungraded" if r["grade_then"] == "" else (r["grade_then"] or NOT_SCORED_BEFORE)
        result.append(ConversionRow(label, r["n"], r["won"], r["lost"]))
    return sorted(result, key=lambda r: (r.label in ("ungraded", NOT_SCORED_BEFORE), r.label))


def by_score_decile(leads: QuerySet[Lead]) -> list[ConversionRow]:
    """Conversion per decile of the priority before the outcome (1 = lowest tenth, 10 = highest),
    via NTILE in a subquery; closed leads never scored before their outcome are left out."""
    ranked = (
        with_score_before_outcome(leads.order_by())
        .filter(priority_then__isnull=False)
        .annotate(decile=Window(Ntile(10), order_by=F("priority_then").asc()))
        .values("decile", "status")
    )
    inner, params = ranked.query.sql_with_params()
    sql = (
        "SELECT decile, COUNT(*), "
        "SUM(CASE WHEN status = %s THEN 1 ELSE 0 END), SUM(CASE WHEN status = %s THEN 1 ELSE 0 END) "
        f"FROM ({inner}) ranked GROUP BY decile ORDER BY decile"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [LeadStatus.WON, LeadStatus.LOST, *params])
        rows = cursor.fetchall()
    return [ConversionRow(f"Decile {d}", n, int(w or 0), int(lo or 0)) for d, n, w, lo in rows]


@dataclass(frozen=True)
class FunnelStep:
    label: str
    count: int
    share: float  # of all leads in the period


def funnel(leads: QuerySet[Lead]) -> list[FunnelStep]:
    """Pipeline funnel: all → worked → qualified → won, one conditional aggregate."""
    agg = leads.aggregate(
        total=Count("id"),
        worked=Count("id", filter=~Q(status=LeadStatus.NEW)),
        qualified=Count(
            "id", filter=Q(qualified_at__isnull=False) | Q(status__in=(LeadStatus.QUALIFIED, LeadStatus.WON))
        ),
        won=Count("id", filter=WON),
        lost=Count("id", filter=Q(status=LeadStatus.LOST)),
    )
    total = agg["total"] or 0
    steps = [
        ("All leads", total),
        ("Worked (past new)", agg["worked"]),
        ("Qualified", agg["qualified"]),
        ("Won", agg["won"]),
    ]
    return [FunnelStep(label, n, (n / total) if total else 0.0) for label, n in steps]


WEEKS_SHOWN = {"30": 5, "90": 13, "365": 52, "all": 52}


@dataclass(frozen=True)
class WeekRow:
    week: date  # the Monday the week starts on, in the reader's zone
    new_leads: int
    won: int
    lost: int

    @property
    def rate(self) -> float | None:
        return self.won / (self.won + self.lost) if self.won + self.lost else None


def weekly_trends(period: str, *, now: datetime | None = None) -> list[WeekRow]:
    """Per week (oldest first, empty weeks included): leads that arrived, and leads won and lost
    that week (by when they closed). Two GROUP BY queries, weeks in the current time zone."""
    now = now or timezone.now()
    weeks = WEEKS_SHOWN[period]
    this_monday = timezone.localtime(now).date() - timedelta(days=timezone.localtime(now).weekday())
    first = this_monday - timedelta(weeks=weeks - 1)
    start = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    arrived = dict(
        Lead.objects.filter(created_at__gte=start, created_at__lte=now)
        .order_by()
        .annotate(week=TruncWeek("created_at"))
        .values("week")
        .annotate(n=Count("id"))
        .values_list("week", "n")
    )
    closed = {
        r["week"]: r
        for r in Lead.objects.filter(closed_at__gte=start, closed_at__lte=now, status__in=OUTCOMES)
        .order_by()
        .annotate(week=TruncWeek("closed_at"))
        .values("week")
        .annotate(won=Count("id", filter=WON), lost=Count("id", filter=Q(status=LeadStatus.LOST)))
    }

    def day(value: Any) -> date:
        return value.date() if isinstance(value, datetime) else value

    arrived = {day(k): v for k, v in arrived.items()}
    closed = {day(k): v for k, v in closed.items()}
    rows = []
    for i in range(weeks):
        week = first + timedelta(weeks=i)
        c = closed.get(week, {})
        rows.append(WeekRow(week, arrived.get(week, 0), c.get("won", 0), c.get("lost", 0)))
    return rows


@dataclass(frozen=True)
class ChatResponse:
    """One salesperson's answers to handed-off chats: how many, and the median wait."""

    answered: int
    median_seconds: float | None
    unanswered: int = 0

    @property
    def median_text(self) -> str:
        """'45 s', '3 min', '2 h 10 min'; '–' when no chat was answered."""
        if self.median_seconds is None:
            return "–"
        seconds = round(self.median_seconds)
        if seconds < 60:
            return f"{seconds} s"
        minutes = round(seconds / 60)
        return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


@dataclass(frozen=True)
class SalespersonRow:
    user_id: int
    name: str
    leads: int
    won: int
    lost: int
    follow_ups_due: int  # due in the period, by now
    follow_ups_on_time: int  # of those, done by their due time
    follow_ups_late: int  # of those, done late or still open
    chats: ChatResponse | None

    @property
    def rate(self) -> float | None:
        return self.won / (self.won + self.lost) if self.won + self.lost else None

    @property
    def on_time_share(self) -> float | None:
        return self.follow_ups_on_time / self.follow_ups_due if self.follow_ups_due else None


def chat_responses(*, since: datetime | None, until: datetime) -> dict[int, ChatResponse]:
    """Chat answer times per salesperson, from the chat app (a receiver of `report_chat_responses`:
    the CRM core does not import the chat). Empty when no chat app answers."""
    merged: dict[int, ChatResponse] = {}
    for _receiver, answer in signals.report_chat_responses.send(sender=None, since=since, until=until):
        merged.update(cast("dict[int, ChatResponse]", answer or {}))
    return merged


def by_salesperson(period: str, *, now: datetime | None = None) -> list[SalespersonRow]:
    """Per owner: leads, won, lost (leads created in the period); follow-ups due in the period and
    done on time; handed-off chats answered and the median wait. A few GROUP BY queries."""
    now = now or timezone.now()
    days = PERIODS[period]
    since = now - timedelta(days=days) if days is not None else None
    leads = (
        leads_in_period(period, now=now)
        .filter(owner__isnull=False)
        .order_by()
        .values("owner")
        .annotate(
            n=Count("id"), won=Count("id", filter=WON), lost=Count("id", filter=Q(status=LeadStatus.LOST))
        )
    )
    lead_rows = {r["owner"]: r for r in leads}
    due = FollowUp.objects.filter(assigned_to__isnull=False, due_at__lte=now)
    if since is not None:
        due = due.filter(due_at__gte=since)
    follow_rows = {
        r["assigned_to"]: r
        for r in due.order_by()
        .values("assigned_to")
        .annotate(
            n=Count("id"),
            on_time=Count("id", filter=Q(done_at__isnull=False, done_at__lte=F("due_at"))),
        )
    }
    chats = chat_responses(since=since, until=now)
    user_ids = set(lead_rows) | set(follow_rows) | set(chats)
    users = (
        get_user_model()._default_manager.filter(pk__in=user_ids).only("username", "first_name", "last_name")
    )
    rows = []
    for user in users:  # one row per salesperson (a handful), not per lead
        lr = lead_rows.get(user.pk, {})
        fr = follow_rows.get(user.pk, {})
        name = f"{user.first_name} {user.last_name}".strip() or user.get_username()
        n_due, on_time = fr.get("n", 0), fr.get("on_time", 0)
        rows.append(
            SalespersonRow(
                user.pk,
                name,
                lr.get("n", 0),
                lr.get("won", 0),
                lr.get("lost", 0),
                n_due,
                on_time,
                n_due - on_time,
                chats.get(user.pk),
            )
        )
    return sorted(rows, key=lambda r: r.name.lower())


def median_seconds(values: list[float]) -> float | None:
    """The median of `values`, None for none."""
    return float(statistics.median(values)) if values else None


REPORT_CACHE_SECONDS = 120


def manager_report(period: str, *, now: datetime | None = None) -> dict[str, Any]:
    """All report tables for one period."""
    now = now or timezone.now()
    leads = leads_in_period(period, now=now)
    return {
        "computed_at": now,
        "by_source": by_source(leads),
        "by_grade": by_grade(leads),
        "by_decile": by_score_decile(leads),
        "funnel": funnel(leads),
        "weekly": weekly_trends(period, now=now),
        "by_salesperson": by_salesperson(period, now=now),
    }


def cached_manager_report(period: str) -> dict[str, Any]:
    """The report, recomputed at most every two minutes: on a million leads it scans the table
    a few times (seconds), and managers reload it far more often than the numbers move."""
    # Never None: the default is a callable returning the report, stored and returned as it is.
    return cast(
        "dict[str, Any]",
        cache.get_or_set(
            # Weeks start on the reader's Monday: one cached copy per time zone.
            f"leadcrm:manager-report:{period}:{timezone.get_current_timezone_name()}",
            lambda: manager_report(period),
            REPORT_CACHE_SECONDS,
        ),
    )
