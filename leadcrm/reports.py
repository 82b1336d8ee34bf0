"""Manager reports: conversion by source, grade and score decile, time to convert, the funnel.

Each report is one SQL aggregate (GROUP BY in the database, never a loop over leads), so they stay
usable on a million leads. Conversion rate = won ÷ closed-as-won-or-lost: leads still open have
no outcome yet and would only dilute the rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.core.cache import cache
from django.db import connection
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Window
from django.db.models.functions import Ntile
from django.utils import timezone

from leadcrm.models import Lead, LeadSource, LeadStatus

PERIODS = {"30": 30, "90": 90, "365": 365, "all": None}
WON = Q(status=LeadStatus.WON)
CLOSED_WON_OR_LOST = Q(status__in=(LeadStatus.WON, LeadStatus.LOST))


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


def by_grade(leads: QuerySet[Lead]) -> list[ConversionRow]:
    """Conversion per grade (A2…); leads without a grade show as "ungraded"."""
    rows = (
        leads.order_by()
        .values("grade")
        .annotate(
            n=Count("id"),
            won=Count("id", filter=WON),
            lost=Count("id", filter=Q(status=LeadStatus.LOST)),
        )
        .order_by("grade")
    )
    return [ConversionRow(r["grade"] or "ungraded", r["n"], r["won"], r["lost"]) for r in rows]


def by_score_decile(leads: QuerySet[Lead], *, field: str = "priority") -> list[ConversionRow]:
    """Conversion per decile of `field` (1 = lowest tenth, 10 = highest), via NTILE in a subquery."""
    ranked = (
        leads.order_by()
        .annotate(decile=Window(Ntile(10), order_by=F(field).asc()))
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
    }


def cached_manager_report(period: str) -> dict[str, Any]:
    """The report, recomputed at most every two minutes: on a million leads it scans the table
    a few times (seconds), and managers reload it far more often than the numbers move."""
    # Never None: the default is a callable returning the report, stored and returned as it is.
    return cast(
        "dict[str, Any]",
        cache.get_or_set(
            f"leadcrm:manager-report:{period}", lambda: manager_report(period), REPORT_CACHE_SECONDS
        ),
    )
