"""Overdue follow-ups are not "due today" (issue 16, item 7): the queue's strip and the nav badge
count them apart."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from leadcrm import selectors
from tests.factories import make_follow_up, make_lead

pytestmark = pytest.mark.django_db


def test_overdue_and_due_later_today_are_counted_apart(client, salesperson) -> None:
    now = timezone.now()
    later_today = now + (selectors.end_of_today(now) - now) / 2
    lead = make_lead(owner=salesperson)
    for days in (1, 3):
        make_follow_up(lead, assigned_to=salesperson, due_at=now - timedelta(days=days))
    make_follow_up(lead, assigned_to=salesperson, due_at=later_today)
    make_follow_up(lead, assigned_to=salesperson, due_at=now - timedelta(days=2), done_at=now)  # done
    make_follow_up(lead, assigned_to=salesperson, due_at=now + timedelta(days=2))  # not today

    assert selectors.due_counts(user=salesperson, now=now) == {"overdue": 2, "today": 1}

    client.force_login(salesperson)
    queue = client.get(reverse("leadcrm:queue")).content.decode()
    assert "2 follow-ups overdue · 1 due later today" in queue
    assert "3 follow-ups due today" not in queue
    badge = client.get(reverse("leadcrm:due_badge")).content.decode()
    assert '2<span class="visually-hidden"> overdue</span>' in badge
    assert '1<span class="visually-hidden"> due later today</span>' in badge
