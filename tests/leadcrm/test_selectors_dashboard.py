"""Queue, lead context, follow-up and report selectors against the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from leadcrm import reports, selectors
from leadcrm.models import FollowUp, InteractionKind, Lead, SegmentMembership
from scoring.models import ScoreSnapshot
from tests.factories import make_follow_up, make_interaction, make_lead, make_segment

pytestmark = pytest.mark.django_db


def ids(leads) -> list[int]:
    return [lead.pk for lead in leads]


def test_queue_orders_by_priority_and_hides_closed_and_other_peoples_leads(
    salesperson, other_salesperson
) -> None:
    low = make_lead(priority=10, owner=salesperson)
    high = make_lead(priority=90)  # unassigned: visible
    mid = make_lead(priority=50, owner=salesperson)
    make_lead(priority=99, owner=other_salesperson)  # someone else's: hidden
    make_lead(
        priority=95, owner=salesperson, status="won", lost_reason=""
    )  # closed: not in the working queue

    assert ids(selectors.lead_queue(user=salesperson)) == [high.pk, mid.pk, low.pk]
    assert len(selectors.lead_queue(user=salesperson, status="all")) == 4
    assert ids(selectors.lead_queue(user=salesperson, mine=True)) == [mid.pk, low.pk]
    assert ids(selectors.lead_queue(user=salesperson, unassigned=True)) == [high.pk]


def test_queue_filters(manager, salesperson) -> None:
    now = timezone.now()
    a2 = make_lead(grade="A2", source="referral", priority=5)
    a1 = make_lead(
        grade="A1", source="chat", priority=6, live_until=now + timedelta(minutes=2), owner=salesperson
    )
    b1 = make_lead(grade="B1", source="chat", priority=7, company_name="Zebra Foods", status="qualified")
    seg = make_segment()
    SegmentMembership.objects.create(segment=seg, lead=b1)

    assert ids(selectors.lead_queue(user=manager, grade="A")) == [a1.pk, a2.pk]
    assert ids(selectors.lead_queue(user=manager, grade="A2")) == [a2.pk]
    assert ids(selectors.lead_queue(user=manager, source="chat")) == [b1.pk, a1.pk]
    assert ids(selectors.lead_queue(user=manager, live=True, now=now)) == [a1.pk]
    assert ids(selectors.lead_queue(user=manager, segment=seg.pk)) == [b1.pk]
    assert ids(selectors.lead_queue(user=manager, owner=salesperson.pk)) == [a1.pk]
    assert ids(selectors.lead_queue(user=manager, status="qualified")) == [b1.pk]
    assert ids(selectors.lead_queue(user=manager, q="zebra")) == [b1.pk]
    assert ids(selectors.lead_queue(user=manager, q=b1.email.upper())) == [b1.pk]
    assert ids(selectors.lead_queue(user=manager, sort="name")) == ids(
        Lead.objects.order_by("last_name", "first_name")
    )


def test_queue_page_knows_about_a_next_page_without_counting(manager) -> None:
    for i in range(7):
        make_lead(priority=i)
    first = selectors.queue_page(selectors.lead_queue(user=manager), page=1, per_page=3)
    last = selectors.queue_page(selectors.lead_queue(user=manager), page=3, per_page=3)
    assert len(first.rows) == 3
    assert first.has_next
    assert not first.has_previous
    assert (first.start_index, first.end_index) == (1, 3)
    assert len(last.rows) == 1
    assert not last.has_next
    assert last.has_previous


def test_top_reason_is_the_strongest_rule_then_the_strongest_model_factor() -> None:
    lead = Lead(
        score_breakdown=[
            {"rule": "pricing", "points": 10, "reason": "Viewed pricing"},
            {"rule": "bounce", "points": -25, "reason": "Email bounced"},
        ]
    )
    assert selectors.top_reason(lead) == "Email bounced (-25)"
    lead = Lead(
        ml_factors=[
            {"feature": "x", "label": "Small", "effect": 0.1},
            {"feature": "y", "label": "Big", "effect": -0.4},
        ]
    )
    assert selectors.top_reason(lead) == "Big"
    assert selectors.top_reason(Lead(score_breakdown=["garbage", {"points": "x"}])) == ""


def test_lead_context_gathers_everything(manager) -> None:
    now = timezone.now()
    lead = make_lead(
        score_breakdown=[
            {"rule": "r1", "points": 15, "reason": "Decision maker"},
            {"rule": "r2", "points": -5, "reason": "Free mail"},
        ],
        ml_factors=[{"feature": "f", "label": "Referral source", "effect": 0.3}],
        timezone="Europe/Berlin",
    )
    make_interaction(
        lead,
        "chat_message",
        payload={"text": "How much is the annual plan?"},
        sentiment=-0.6,
        occurred_at=now - timedelta(minutes=3),
    )
    make_interaction(lead, "page_view", payload={"url": "/pricing"}, occurred_at=now - timedelta(days=1))
    ScoreSnapshot.objects.create(lead=lead, taken_at=now - timedelta(days=2), rule_score=10)
    ScoreSnapshot.objects.create(
        lead=lead, taken_at=now - timedelta(days=1), rule_score=30, ml_probability=0.4
    )
    seg = make_segment("Retail")
    SegmentMembership.objects.create(segment=seg, lead=lead)
    make_follow_up(lead, due_at=now - timedelta(hours=1))
    make_follow_up(lead, due_at=now + timedelta(days=1), done_at=now)  # done: not shown

    ctx = selectors.lead_context(user=manager, lead_id=lead.pk, now=now)

    assert [i.kind_slug for i in ctx.timeline] == ["chat_message", "page_view"]
    assert [s.rule_score for s in ctx.snapshots] == [10, 30]  # oldest first, for the chart
    assert [s.name for s in ctx.segments] == ["Retail"]
    assert len(ctx.follow_ups) == 1
    assert ctx.advice.next_step.text == "Do the overdue follow-up first."
    assert ctx.advice.talking_points[0].text.startswith("Frustrated")
    assert [r["rule"] for r in ctx.rules_up] == ["r1"]
    assert [r["rule"] for r in ctx.rules_down] == ["r2"]
    assert ctx.factors_up[0]["label"] == "Referral source"
    assert ctx.sentiments[0][1] == -0.6
    assert ctx.local_time is not None
    assert ctx.local_time.utcoffset() is not None


def test_lead_context_counts_kinds_beyond_the_interactions_it_reads(manager, monkeypatch) -> None:
    lead = make_lead()
    for kind in ("page_view", "chat_message", "page_view"):
        make_interaction(lead, kind)
    expected = [(InteractionKind.PAGE_VIEW, 2), (InteractionKind.CHAT_MESSAGE, 1)]
    assert selectors.lead_context(user=manager, lead_id=lead.pk).kinds == expected  # counted from the rows
    monkeypatch.setattr(selectors, "CONTEXT_TOUCHES", 2)
    ctx = selectors.lead_context(user=manager, lead_id=lead.pk)  # history longer than read: a COUNT query
    assert ctx.kinds == expected
    assert ctx.timeline_has_more is False


def test_lead_context_of_a_hidden_lead_is_404(salesperson, other_salesperson) -> None:
    from django.http import Http404

    lead = make_lead(owner=other_salesperson)
    with pytest.raises(Http404):
        selectors.lead_context(user=salesperson, lead_id=lead.pk)


def test_follow_ups_are_split_into_overdue_today_and_upcoming(salesperson) -> None:
    now = timezone.now().replace(hour=12, minute=0)
    lead = make_lead(owner=salesperson)
    overdue = make_follow_up(lead, assigned_to=salesperson, due_at=now - timedelta(hours=2))
    today = make_follow_up(lead, assigned_to=salesperson, due_at=now + timedelta(hours=2))
    later = make_follow_up(lead, assigned_to=salesperson, due_at=now + timedelta(days=2))
    make_follow_up(lead, assigned_to=salesperson, due_at=now + timedelta(hours=1), done_at=now)
    due = selectors.follow_ups_for(user=salesperson, now=now)
    assert [f.pk for f in due["overdue"]] == [overdue.pk]
    assert [f.pk for f in due["today"]] == [today.pk]
    assert [f.pk for f in due["upcoming"]] == [later.pk]
    assert selectors.due_count(user=salesperson, now=now) == 2
    assert FollowUp.objects.count() == 4


def test_reports_aggregate_conversion_by_source_grade_decile_and_funnel() -> None:
    now = timezone.now()
    created = now - timedelta(days=20)
    for i in range(10):
        make_lead(
            source="referral",
            grade="A1",
            priority=90 + i,
            status="won",
            created_at=created,
            closed_at=created + timedelta(days=4),
        )
    for i in range(10):
        make_lead(
            source="paid_ads",
            grade="C3",
            priority=10 + i,
            status="lost",
            lost_reason="No budget",
            created_at=created,
            closed_at=created + timedelta(days=4),
        )
    for i in range(5):
        make_lead(source="paid_ads", grade="C3", priority=20 + i, status="working", created_at=created)
    make_lead(source="referral", created_at=now - timedelta(days=400))  # outside "last 365 days"
    # Closed leads count by their score before the outcome (their score history): here the same.
    ScoreSnapshot.objects.bulk_create(
        ScoreSnapshot(lead=lead, taken_at=created, grade=lead.grade, priority=lead.priority, rule_score=0)
        for lead in Lead.objects.filter(status__in=("won", "lost"))
    )

    leads = reports.leads_in_period("365", now=now)
    by_source = {r.label: r for r in reports.by_source(leads)}
    assert by_source["Referral"].rate == 1.0
    assert by_source["Referral"].avg_days_to_win == 4.0
    assert by_source["Paid ads"].rate == 0.0
    assert by_source["Paid ads"].leads == 15
    by_grade = {r.label: r for r in reports.by_grade(leads)}
    assert (by_grade["A1"].won, by_grade["C3"].lost) == (10, 10)
    deciles = reports.by_score_decile(leads)
    assert len(deciles) == 10
    assert sum(r.leads for r in deciles) == 25
    assert deciles[-1].rate == 1.0
    assert deciles[0].rate == 0.0
    funnel = {s.label: s.count for s in reports.funnel(leads)}
    assert funnel == {"All leads": 25, "Worked (past new)": 25, "Qualified": 10, "Won": 10}
    assert reports.funnel(reports.leads_in_period("all"))[0].count == 26
