"""Reads for pages and the API; each selector owns its select_related/prefetch.

The queue is one indexed query (`ORDER BY priority DESC, id LIMIT n+1` over `lead_queue_idx`, no
COUNT): page size never changes how many queries a page runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from leadcrm import playbook
from leadcrm import talking_points as tp
from leadcrm.models import CLOSED_STATUSES, FollowUp, Interaction, InteractionKind, Lead, Segment
from leadcrm.permissions import MANAGER_GROUP, SALESPERSON_GROUP, is_manager

QUEUE_COLUMNS = (
    "id",
    "first_name",
    "last_name",
    "email",
    "company_name",
    "status",
    "grade",
    "rule_score",
    "fit_score",
    "engagement_score",
    "ml_probability",
    "priority",
    "score_breakdown",
    "ml_factors",
    "last_activity_at",
    "live_until",
    "owner_id",
    "owner__username",
    "owner__first_name",
    "owner__last_name",
)
# Sort overrides. The default and "newest" walk an index; the others sort (see README).
SORTS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "priority": ("Priority", ("-priority", "id")),
    "probability": ("Probability", (F("ml_probability").desc(nulls_last=True), "-priority", "id")),
    "recent": ("Last activity", (F("last_activity_at").desc(nulls_last=True), "id")),
    "newest": ("Newest", ("-created_at", "-id")),
    "name": ("Name", ("last_name", "first_name", "id")),
}
TIMELINE_LIMIT = 30
CONTEXT_TOUCHES = 300  # interactions read for talking points and interests (newest first)
TREND_POINTS = 60


def home_summary(*, user: Any) -> dict[str, int]:
    """Counts for the landing page, in one aggregate query."""
    return Lead.objects.visible_to(user).aggregate(
        total=Count("id"),
        open=Count("id", filter=~Q(status__in=CLOSED_STATUSES)),
        mine=Count("id", filter=Q(owner=user)),
        unassigned=Count("id", filter=Q(owner__isnull=True)),
    )


def top_reason(lead: Lead) -> str:
    """The single strongest reason behind a lead's score: largest rule points, else model factor."""
    best: dict[str, Any] | None = None
    for item in lead.score_breakdown or []:
        if not (isinstance(item, dict) and isinstance(item.get("points"), int | float)):
            continue  # tolerate malformed rows rather than break the queue
        if best is None or abs(item["points"]) > abs(best["points"]):
            best = item
    if best is not None:
        reason = best.get("reason") or best.get("rule") or ""
        return f"{reason} ({best['points']:+g})" if reason else ""
    factors = [
        f for f in lead.ml_factors or [] if isinstance(f, dict) and isinstance(f.get("effect"), int | float)
    ]
    if factors:
        top = max(factors, key=lambda f: abs(f["effect"]))
        return str(top.get("label") or top.get("feature") or "")
    return ""


@dataclass(frozen=True)
class QueuePage:
    rows: list[Lead]
    number: int
    per_page: int
    has_next: bool
    after: Lead | None = None  # the first lead of the next page (the last row's "why above")

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1

    @property
    def previous_page_number(self) -> int:
        return self.number - 1

    @property
    def start_index(self) -> int:
        return (self.number - 1) * self.per_page + 1 if self.rows else 0

    @property
    def end_index(self) -> int:
        return (self.number - 1) * self.per_page + len(self.rows)


def lead_queue(
    *,
    user: Any,
    now: datetime | None = None,
    grade: str = "",
    segment: int | None = None,
    source: str = "",
    status: str = "",
    owner: int | None = None,
    mine: bool = False,
    unassigned: bool = False,
    live: bool = False,
    q: str = "",
    sort: str = "",
) -> QuerySet[Lead]:
    """The leads `user` may see, filtered, in queue order (validated filter values expected).

    `status` "" means open leads (the working queue), "all" means every status.
    """
    now = now or timezone.now()
    leads = Lead.objects.visible_to(user).select_related("owner").only(*QUEUE_COLUMNS)
    if status == "all":
        pass
    elif status:
        leads = leads.filter(status=status)
    else:  # the working queue: nobody works an erased (anonymised) person
        leads = leads.exclude(status__in=CLOSED_STATUSES).filter(erased_at__isnull=True)
    if grade:
        # "A" means every A grade; a range keeps the (grade, -priority) index usable.
        leads = (
            leads.filter(grade=grade)
            if len(grade) > 1
            else leads.filter(grade__gte=grade, grade__lt=chr(ord(grade) + 1))
        )
    if segment:
        leads = leads.filter(memberships__segment_id=segment)
    if source:
        leads = leads.filter(source=source)
    if owner:
        leads = leads.filter(owner_id=owner)
    if mine:
        leads = leads.filter(owner=user)
    if unassigned:
        leads = leads.filter(owner__isnull=True)
    if live:
        leads = leads.filter(live_until__gt=now)
    for word in q.split()[:5]:
        leads = leads.filter(
            Q(first_name__icontains=word)
            | Q(last_name__icontains=word)
            | Q(email__icontains=word)
            | Q(company_name__icontains=word)
        )
    return leads.order_by(*SORTS.get(sort or "priority", SORTS["priority"])[1])


def next_in_queue(*, user: Any, lead: Lead) -> Lead | None:
    """The lead after `lead` in the viewer's working queue (priority order); else its first lead."""
    leads = lead_queue(user=user).exclude(pk=lead.pk)
    after = leads.filter(Q(priority__lt=lead.priority) | Q(priority=lead.priority, id__gt=lead.pk)).first()
    return after or leads.first()


def _decorate(lead: Lead, now: datetime) -> Lead:
    lead.top_reason = top_reason(lead)
    lead.is_live = bool(lead.live_until and lead.live_until > now)
    return lead


def queue_page(
    leads: QuerySet[Lead], *, page: int = 1, per_page: int = 50, now: datetime | None = None
) -> QueuePage:
    """One page of the queue in one query: fetch a row more than shown to know if there is a next page."""
    now = now or timezone.now()
    page = max(1, page)
    start = (page - 1) * per_page
    rows = list(leads[start : start + per_page + 1])
    for lead in rows:
        _decorate(lead, now)
    return QueuePage(
        rows=rows[:per_page],
        number=page,
        per_page=per_page,
        has_next=len(rows) > per_page,
        after=rows[per_page] if len(rows) > per_page else None,
    )


def filter_choices(*, user: Any) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Segments and (for managers) owners for the queue filters: two small queries."""
    segments = list(Segment.objects.order_by("name").values_list("id", "name"))
    if is_manager(user):
        users = get_user_model().objects.filter(
            groups__name__in=(SALESPERSON_GROUP, MANAGER_GROUP), is_active=True
        )
        owners = [
            (pk, " ".join(p for p in (first, last) if p) or username)
            for pk, username, first, last in users.distinct()
            .order_by("username")
            .values_list("id", "username", "first_name", "last_name")
        ]
    else:
        owners = [(user.pk, "Me")]
    return segments, owners


def visible_lead(*, user: Any, lead_id: int) -> Lead:
    """The lead with its owner, or 404 when the role rule hides it (ids do not leak)."""
    return get_object_or_404(Lead.objects.visible_to(user).select_related("owner"), pk=lead_id)


def _with_times(rows: list[Interaction]) -> list[Interaction]:
    # Timestamps formatted once here: per-item date filters were a large share of the panel's render.
    for row in rows:
        local = timezone.localtime(row.occurred_at)
        row.when_iso = row.occurred_at.isoformat()
        row.when_text = f"{local.day} {local:%b %Y, %H:%M}"
    return rows


def lead_timeline(
    *, lead: Lead, kind: int | None = None, before: datetime | None = None, limit: int = TIMELINE_LIMIT
) -> list[Interaction]:
    """A lead's interactions, newest first, optionally of one kind and older than `before`."""
    rows = Interaction.objects.filter(lead=lead).select_related("logged_by")
    if kind is not None:
        rows = rows.filter(kind=kind)
    if before is not None:
        rows = rows.filter(occurred_at__lt=before)
    return _with_times(list(rows.order_by("-occurred_at", "-id")[:limit]))


def kind_counts(*, lead: Lead) -> list[tuple[InteractionKind, int]]:
    """How many interactions of each kind a lead has (for the timeline filter)."""
    rows = Interaction.objects.filter(lead=lead).values("kind").annotate(n=Count("id")).order_by("kind")
    return [(InteractionKind(r["kind"]), r["n"]) for r in rows]


def _count_kinds(rows: Sequence[Interaction]) -> list[tuple[InteractionKind, int]]:
    counts = Counter(row.kind for row in rows)
    return [(InteractionKind(kind), counts[kind]) for kind in sorted(counts)]


@dataclass
class LeadContext:
    lead: Lead
    timeline: list[Interaction]
    timeline_has_more: bool
    kinds: list[tuple[InteractionKind, int]]
    snapshots: list[Any]  # the score history rows scoring keeps (lead.score_snapshots)
    sentiments: list[tuple[datetime, float, str]]
    segments: list[Segment]
    follow_ups: list[FollowUp]
    advice: tp.Advice
    interests: tp.Interests
    live_now: bool
    local_time: datetime | None
    rules_up: list[dict[str, Any]]
    rules_down: list[dict[str, Any]]
    factors_up: list[dict[str, Any]]
    factors_down: list[dict[str, Any]]
    # Why there is no probability, when the model in use could not give one (scoring.ml says so).
    ml_unavailable: str = ""


def _split(items: Sequence[Any], key: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = [i for i in items or [] if isinstance(i, dict) and isinstance(i.get(key), int | float)]
    up = sorted((i for i in rows if i[key] > 0), key=lambda i: -i[key])
    down = sorted((i for i in rows if i[key] < 0), key=lambda i: i[key])
    return up, down


def stated_interests(custom: Any) -> tuple[str, ...]:
    """What the visitor told the chat they are interested in (`custom["interested_in"]`)."""
    found = custom.get("interested_in") if isinstance(custom, dict) else None
    if isinstance(found, str):
        found = [found]
    return tuple(str(i) for i in found or () if str(i).strip())


def lead_context(*, user: Any, lead_id: int, now: datetime | None = None) -> LeadContext:
    """Everything the lead context panel shows, in a fixed handful of queries."""
    now = now or timezone.now()
    lead = visible_lead(user=user, lead_id=lead_id)
    recent = list(
        Interaction.objects.filter(lead=lead)
        .select_related("logged_by")
        .order_by("-occurred_at", "-id")[:CONTEXT_TOUCHES]
    )
    # Score history through the reverse relation: scoring owns the table, the CRM core only reads it.
    snapshots = list(lead.score_snapshots.order_by("-taken_at")[:TREND_POINTS])[::-1]
    segments = list(
        Segment.objects.filter(memberships__lead=lead).order_by("name").only("id", "name", "kind")
    )
    follow_ups = list(
        FollowUp.objects.filter(lead=lead, done_at__isnull=True)
        .select_related("assigned_to")
        .order_by("due_at")
    )
    # Fewer rows than asked for means `recent` is the whole history: count its kinds here.
    kinds = kind_counts(lead=lead) if len(recent) >= CONTEXT_TOUCHES else _count_kinds(recent)
    touches = [
        tp.Touch(
            kind=InteractionKind(i.kind).slug,
            occurred_at=i.occurred_at,
            payload=i.payload if isinstance(i.payload, dict) else {},
            sentiment=i.sentiment,
        )
        for i in recent
    ]
    end_of_day = end_of_today(now)
    live_now = bool(lead.live_until and lead.live_until > now)
    facts = tp.LeadFacts(
        status=lead.status,
        is_owned=lead.owner_id is not None,
        live_now=live_now,
        timezone=lead.timezone,
        job_title=lead.job_title,
        phone=lead.phone,
        email=lead.email or "",
        lost_reason=lead.lost_reason,
        ml_probability=lead.ml_probability,
        touches=touches,
        overdue_follow_ups=sum(1 for f in follow_ups if f.due_at < now),
        due_today_follow_ups=sum(1 for f in follow_ups if now <= f.due_at < end_of_day),
        grade=lead.grade or "",
        interests=stated_interests(lead.custom),
    )
    rules = playbook.rules()
    sentiments = [
        (
            i.occurred_at,
            i.sentiment,
            str(i.payload.get("text", ""))[:80] if isinstance(i.payload, dict) else "",
        )
        for i in reversed(recent)
        if i.kind == InteractionKind.CHAT_MESSAGE and i.sentiment is not None
    ][-TREND_POINTS:]
    rules_up, rules_down = _split(lead.score_breakdown, "points")
    factors_up, factors_down = _split(lead.ml_factors, "effect")
    total = sum(n for _, n in kinds)
    return LeadContext(
        lead=lead,
        timeline=_with_times(recent[:TIMELINE_LIMIT]),
        timeline_has_more=total > TIMELINE_LIMIT,
        kinds=kinds,
        snapshots=snapshots,
        sentiments=sentiments,
        segments=segments,
        follow_ups=follow_ups,
        advice=tp.advise(facts, now=now, rules=rules),
        interests=tp.interests(touches, rules),
        live_now=live_now,
        local_time=tp.local_time(lead.timezone, now),
        rules_up=rules_up,
        rules_down=rules_down,
        factors_up=factors_up,
        factors_down=factors_down,
        ml_unavailable=next(
            (
                str(f["unavailable"])
                for f in lead.ml_factors or []
                if isinstance(f, dict) and f.get("unavailable")
            ),
            "",
        ),
    )


def end_of_today(now: datetime) -> datetime:
    """Midnight at the end of `now`'s day in the site time zone ("due today" means before this)."""
    start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return start + timedelta(days=1)


def follow_ups_for(
    *, user: Any, now: datetime | None = None, days_ahead: int = 7, limit: int = 500
) -> dict[str, list[FollowUp]]:
    """The user's first `limit` open follow-ups: overdue, due today, and the next week (one query)."""
    now = now or timezone.now()
    end_of_day = end_of_today(now)
    rows = list(
        FollowUp.objects.filter(
            assigned_to=user, done_at__isnull=True, due_at__lt=end_of_day + timedelta(days=days_ahead)
        )
        .select_related("lead")
        .order_by("due_at")[:limit]
    )
    return {
        "overdue": [f for f in rows if f.due_at < now],
        "today": [f for f in rows if now <= f.due_at < end_of_day],
        "upcoming": [f for f in rows if f.due_at >= end_of_day],
    }


def due_counts(*, user: Any, now: datetime | None = None) -> dict[str, int]:
    """`user`'s open follow-ups past their due time ("overdue") and due later today ("today"): one
    aggregate. Kept apart: "114 due today" that are mostly overdue misleads."""
    now = now or timezone.now()
    return FollowUp.objects.filter(assigned_to=user, done_at__isnull=True).aggregate(
        overdue=Count("id", filter=Q(due_at__lt=now)),
        today=Count("id", filter=Q(due_at__gte=now, due_at__lt=end_of_today(now))),
    )


def due_count(*, user: Any, now: datetime | None = None) -> int:
    """Open follow-ups of `user` due by the end of today (overdue included): the nav reminder."""
    return FollowUp.objects.filter(
        assigned_to=user, done_at__isnull=True, due_at__lt=end_of_today(now or timezone.now())
    ).count()
