"""Manager reports: closed leads ranked by their score before the outcome, weekly trends, and
figures per salesperson (conversion, follow-ups on time, chat reply time)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from chatbot.models import Conversation, Message, Sender, Site
from leadcrm import reports
from leadcrm.models import Lead, LeadStatus
from scoring.models import ScoreSnapshot
from tests.factories import make_follow_up, make_lead, make_user

pytestmark = pytest.mark.django_db


def closed_lead(
    status: str, *, then: tuple[str, float] | None, now: tuple[str, float], closed_at: datetime
) -> Lead:
    """A lead closed at `closed_at`, scored `then` before it and `now` after (today's score)."""
    lead = make_lead()
    if then is not None:
        ScoreSnapshot.objects.create(
            lead=lead,
            taken_at=closed_at - timedelta(days=3),
            grade=then[0],
            priority=then[1],
            rule_score=then[1],
        )
    ScoreSnapshot.objects.create(
        lead=lead, taken_at=closed_at + timedelta(hours=1), grade=now[0], priority=now[1], rule_score=now[1]
    )
    Lead.objects.filter(pk=lead.pk).update(status=status, closed_at=closed_at, grade=now[0], priority=now[1])
    return lead


def test_grades_count_the_grade_before_the_outcome_not_todays() -> None:
    closed = timezone.now() - timedelta(days=5)
    # Won as an A1; the win's own activity pushed today's score down to C1 (a stale call, a note).
    closed_lead(LeadStatus.WON, then=("A1", 90), now=("C1", 20), closed_at=closed)
    # Lost as a C1; the lost-reason chat pushed it up to A1 afterwards.
    closed_lead(LeadStatus.LOST, then=("C1", 20), now=("A1", 90), closed_at=closed)
    make_lead(grade="B2", priority=50)  # open: its current grade

    rows = {r.label: r for r in reports.by_grade(Lead.objects.all())}

    assert (rows["A1"].won, rows["A1"].lost) == (1, 0)
    assert (rows["C1"].won, rows["C1"].lost) == (0, 1)
    assert rows["B2"].leads == 1


def test_a_lead_never_scored_before_its_outcome_is_shown_apart() -> None:
    closed_lead(LeadStatus.WON, then=None, now=("A1", 90), closed_at=timezone.now() - timedelta(days=1))

    rows = reports.by_grade(Lead.objects.all())

    assert [(r.label, r.won) for r in rows] == [(reports.NOT_SCORED_BEFORE, 1)]
    assert reports.by_score_decile(Lead.objects.all()) == []


def test_deciles_rank_closed_leads_by_priority_before_the_outcome() -> None:
    closed = timezone.now() - timedelta(days=5)
    closed_lead(LeadStatus.WON, then=("A1", 90), now=("C1", 5), closed_at=closed)
    closed_lead(LeadStatus.LOST, then=("C1", 10), now=("A1", 95), closed_at=closed)

    rows = reports.by_score_decile(Lead.objects.all())

    # Two leads fill deciles 1 and 2: the higher priority (before the outcome) is the winner.
    assert [(r.label, r.won, r.lost) for r in rows] == [("Decile 1", 0, 1), ("Decile 2", 1, 0)]


def test_weekly_trends_count_arrivals_and_outcomes_per_week_with_empty_weeks() -> None:
    now = timezone.now()
    monday = timezone.localtime(now).date() - timedelta(days=timezone.localtime(now).weekday())
    this_week = timezone.make_aware(datetime.combine(monday, datetime.min.time())) + timedelta(hours=1)
    three_weeks_ago = this_week - timedelta(weeks=3)
    for _ in range(2):
        make_lead(created_at=three_weeks_ago)
    won = make_lead(created_at=this_week)
    Lead.objects.filter(pk=won.pk).update(status=LeadStatus.WON, closed_at=this_week)

    weeks = reports.weekly_trends("30", now=now)

    assert len(weeks) == reports.WEEKS_SHOWN["30"]
    assert weeks[-1].week == monday
    assert (weeks[-1].new_leads, weeks[-1].won, weeks[-1].rate) == (1, 1, 1.0)
    assert (weeks[-4].new_leads, weeks[-4].won) == (2, 0)
    assert weeks[-2].new_leads == weeks[-3].new_leads == 0


def test_figures_per_salesperson() -> None:
    now = timezone.now()
    ann = make_user("ann", first_name="Ann", last_name="Baker")
    bob = make_user("bob", first_name="Bob", last_name="Cook")
    for status in (LeadStatus.WON, LeadStatus.WON, LeadStatus.LOST):
        make_lead(owner=ann, status=status, closed_at=now - timedelta(days=1))
    make_lead(owner=bob)
    lead = make_lead(owner=ann)
    make_follow_up(lead, assigned_to=ann, due_at=now - timedelta(days=2), done_at=now - timedelta(days=3))
    make_follow_up(lead, assigned_to=ann, due_at=now - timedelta(days=2), done_at=now - timedelta(days=1))
    make_follow_up(lead, assigned_to=ann, due_at=now - timedelta(days=1))  # overdue, still open
    make_follow_up(lead, assigned_to=ann, due_at=now + timedelta(days=1))  # not due yet: not counted
    site = Site.objects.create(name="Bakery")
    for wait, agent in ((30, bob), (90, bob), (600, bob)):
        chat = Conversation.objects.create(
            site=site, lead=lead, handoff_at=now - timedelta(hours=2), agent=agent
        )
        Message.objects.create(
            conversation=chat, sender=Sender.BOT, text="hi", created_at=now - timedelta(hours=3)
        )
        Message.objects.create(
            conversation=chat,
            sender=Sender.AGENT,
            agent=agent,
            text="Hello!",
            created_at=chat.handoff_at + timedelta(seconds=wait),
        )
        Message.objects.create(
            conversation=chat,
            sender=Sender.AGENT,
            agent=agent,
            text="Anything else?",
            created_at=chat.handoff_at + timedelta(seconds=wait + 5000),
        )
    Conversation.objects.create(site=site, lead=lead, handoff_at=now - timedelta(minutes=5), agent=ann)

    rows = {r.name: r for r in reports.by_salesperson("30", now=now)}

    a, b = rows["Ann Baker"], rows["Bob Cook"]
    assert (a.leads, a.won, a.lost, a.rate) == (4, 2, 1, 2 / 3)
    assert (a.follow_ups_due, a.follow_ups_on_time, a.follow_ups_late) == (3, 1, 2)
    assert a.chats == reports.ChatResponse(answered=0, median_seconds=None, unanswered=1)
    assert (b.leads, b.rate, b.follow_ups_due) == (1, None, 0)
    assert b.chats == reports.ChatResponse(answered=3, median_seconds=90.0, unanswered=0)
    assert b.chats.median_text == "2 min"


def test_reports_page_shows_trends_and_salespeople(client, manager) -> None:
    ann = make_user("ann2", first_name="Ann", last_name="Baker")
    make_lead(owner=ann, status=LeadStatus.WON, closed_at=timezone.now())
    client.force_login(manager)

    page = client.get(reverse("leadcrm:reports")).content.decode()

    assert "Weekly trend" in page
    assert "New leads per week" in page
    assert "By salesperson" in page
    assert "Ann Baker" in page


def test_column_chart_scales_to_the_largest_week() -> None:
    from leadcrm import charts

    chart = charts.columns([("w1", 0), ("w2", 5), ("w3", 10)], width=300, height=100)

    assert [(c.x, c.y, c.height) for c in chart.columns] == [
        ("0.0", "100.0", "0.0"),
        ("100.0", "50.0", "50.0"),
        ("200.0", "0.0", "100.0"),
    ]
    assert chart.columns[1].label == "w2: 5"
    assert (chart.first_label, chart.last_label, chart.empty) == ("w1", "w3", False)
    assert charts.columns([("w1", 0)]).empty
