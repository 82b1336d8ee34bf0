"""The queue shows what it sorts by (the priority) and, per row, why it is above the next one."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.urls import reverse

from leadcrm.models import Lead
from leadcrm.queue_html import why_above
from tests.factories import make_lead


def lead(name: str, *, priority: float, rule: float, p: float | None) -> Lead:
    return Lead(first_name=name, last_name="", priority=priority, rule_score=rule, ml_probability=p)


def test_why_says_the_probability_outweighed_a_lower_rule_score() -> None:
    text = why_above(lead("Mia", priority=70, rule=60, p=0.8), lead("Tom", priority=65, rule=85, p=0.45))

    assert text == (
        "Priority 70.0 vs 65.0 for Tom: its higher probability outweighs the rule score "
        "(rule score 60 vs 85, probability 80% vs 45%)."
    )


def test_why_says_the_rule_score_outweighed_a_lower_probability() -> None:
    text = why_above(lead("Mia", priority=70, rule=90, p=0.5), lead("Tom", priority=60, rule=50, p=0.7))

    assert "its higher rule score outweighs the probability" in text


def test_why_explains_ties_and_the_last_row() -> None:
    assert why_above(
        lead("A", priority=50, rule=50, p=None), lead("B", priority=50, rule=50, p=None)
    ).startswith("Same priority as B (50.0): the lead that arrived first is listed first")
    assert (
        why_above(lead("A", priority=5, rule=5, p=None), None) == "Priority 5.0: the lowest of these leads."
    )


@pytest.mark.django_db
def test_queue_shows_the_priority_and_why_each_row_is_above_the_next(client, manager) -> None:
    # The probability column disagrees with the order: the explanation must say why.
    first = make_lead(first_name="Mia", last_name="Top", priority=72, rule_score=95, ml_probability=0.40)
    second = make_lead(first_name="Tom", last_name="Next", priority=68, rule_score=50, ml_probability=0.86)
    client.force_login(manager)

    page = client.get(reverse("leadcrm:queue")).content.decode()

    assert '<th scope="col" class="col-priority">' in page
    row = re.search(rf'<tr id="row-{first.pk}".*?</tr>', page, re.S).group(0)
    assert f'aria-describedby="why-{first.pk}"' in row  # keyboard focus on the link reads it
    assert '<span class="priority">72</span>' in row
    tip = unescape(re.search(rf'id="why-{first.pk}" role="tooltip">(.*?)</span>', row).group(1))
    assert tip.startswith(
        "Priority 72.0 vs 68.0 for Tom Next: its higher rule score outweighs the probability"
    )
    assert f'id="why-{second.pk}"' in page


@pytest.mark.django_db
def test_other_sorts_show_the_priority_without_the_why(client, manager) -> None:
    make_lead(first_name="Mia", priority=72)
    client.force_login(manager)

    page = client.get(reverse("leadcrm:queue"), {"sort": "name"}).content.decode()

    assert '<span class="priority">72</span>' in page
    assert 'role="tooltip"' not in page
