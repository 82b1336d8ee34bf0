"""Retention: unconverted leads inactive past the period are anonymised; the preview says which first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from audit.models import Entry
from leadcrm.models import Lead
from privacy import services
from privacy.tasks import apply_retention
from tests.factories import make_lead

pytestmark = pytest.mark.django_db


def old_lead(days: int, **fields) -> Lead:
    lead = make_lead(**fields)
    at = timezone.now() - timedelta(days=days)
    Lead.objects.filter(pk=lead.pk).update(created_at=at, last_activity_at=at, status_changed_at=at)
    return lead


@pytest.fixture
def leads(settings):
    settings.PRIVACY_RETENTION_MONTHS = 24
    return {
        "stale": [old_lead(800, status="lost", lost_reason="Price") for _ in range(3)] + [old_lead(900)],
        "customer": old_lead(1000, status="won"),
        "recent": old_lead(100),
    }


def test_dry_run_only_says_what_apply_then_does(leads, capsys) -> None:
    by_status = list(Lead.objects.values_list("status").annotate(n=Count("id")).order_by("status"))

    call_command("retention", "--dry-run")
    out = capsys.readouterr().out
    assert "4 unconverted leads" in out
    assert "Next scheduled run" in out
    assert not Lead.objects.filter(erased_at__isnull=False).exists()

    call_command("retention", "--apply")
    assert "4 leads anonymised" in capsys.readouterr().out
    erased = set(Lead.objects.filter(erased_at__isnull=False))
    assert erased == set(leads["stale"])
    assert all(lead.email is None and lead.first_name == "" for lead in erased)
    # Customers and recently active leads stay; counts by status stay.
    assert Lead.objects.get(pk=leads["customer"].pk).email == leads["customer"].email
    assert Lead.objects.get(pk=leads["recent"].pk).email == leads["recent"].email
    assert list(Lead.objects.values_list("status").annotate(n=Count("id")).order_by("status")) == by_status
    # One audit row for the run, one per person, none naming anyone.
    assert Entry.objects.filter(action="erased", lead_id__isnull=True).count() == 1
    assert Entry.objects.filter(action="erased", lead_id__in=[lead.pk for lead in erased]).count() == 4


def test_apply_works_in_chunks_and_is_safe_to_run_twice(leads) -> None:
    assert services.apply_retention(chunk=2) == 4
    assert services.apply_retention(chunk=2) == 0
    assert apply_retention.delay().get() == 0  # the beat task


def test_zero_months_switches_retention_off(leads, settings) -> None:
    settings.PRIVACY_RETENTION_MONTHS = 0
    assert services.retention_preview().count == 0
    assert services.apply_retention() == 0
    with pytest.raises(CommandError, match="Retention is off"):
        call_command("retention", "--dry-run")
    assert not Lead.objects.filter(erased_at__isnull=False).exists()


def test_activity_keeps_a_lead(leads) -> None:
    stale = leads["stale"][0]
    Lead.objects.filter(pk=stale.pk).update(last_activity_at=timezone.now())
    assert stale.pk not in set(services.retention_candidates(now=timezone.now()).values_list("pk", flat=True))


def test_the_preview_page_shows_the_count_the_first_leads_and_the_next_run(client, manager, leads) -> None:
    client.force_login(manager)
    page = client.get(reverse("privacy:retention"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "<strong>4</strong> leads" in text
    assert leads["stale"][3].display_name in text  # longest inactive first
    assert leads["recent"].display_name not in text
    next_run = services.next_retention_run(timezone.now())
    assert next_run is not None
    assert next_run.strftime("%-d %b %Y") in text
    assert 'style="' not in text


@pytest.mark.parametrize(
    ("now", "months", "expected"),
    [
        ("2026-03-31T10:00:00+00:00", 1, "2026-02-28T10:00:00+00:00"),
        ("2026-02-28T00:00:00+00:00", 24, "2024-02-28T00:00:00+00:00"),
        ("2026-01-15T08:30:00+00:00", 13, "2024-12-15T08:30:00+00:00"),
    ],
)
def test_months_before_counts_calendar_months(now: str, months: int, expected: str) -> None:
    from datetime import datetime

    assert services.months_before(datetime.fromisoformat(now), months) == datetime.fromisoformat(expected)
