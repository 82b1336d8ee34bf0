from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db.models import Count

from leadcrm.models import FollowUp, Interaction, Lead, LeadStatus, Segment

pytestmark = pytest.mark.django_db

ARGS = ["--leads", "150", "--seed", "3", "--now", "2026-06-01", "--skip-apps"]


def seed(*extra: str) -> str:
    out = StringIO()
    call_command("seed_demo", *ARGS, *extra, stdout=out)
    return out.getvalue()


def digest() -> str:
    rows = (
        Lead.objects.order_by("email")
        .annotate(n=Count("interactions"))
        .values_list("email", "status", "source", "employee_count", "created_at", "owner__username", "n")
    )
    return hashlib.sha256(repr(list(rows)).encode()).hexdigest()


def test_seed_creates_users_leads_and_history() -> None:
    output = seed()
    assert Lead.objects.count() == 150
    assert Interaction.objects.count() > 150 * 5
    assert set(User.objects.values_list("username", flat=True)) == {"manager", "sales1", "sales2", "sales3"}
    assert User.objects.get(username="manager").check_password("demo")
    assert User.objects.get(username="manager").groups.filter(name="Manager").exists()
    assert Segment.objects.count() == 4
    assert FollowUp.objects.exists()
    # past leads have outcomes, and there are open ones to work on
    statuses = set(Lead.objects.values_list("status", flat=True))
    assert {LeadStatus.WON, LeadStatus.LOST, LeadStatus.NEW} <= statuses
    assert "manager" in output
    assert "sales1" in output
    assert "demo" in output


def test_seed_is_idempotent() -> None:
    seed()
    counts = (
        Lead.objects.count(),
        Interaction.objects.count(),
        FollowUp.objects.count(),
        User.objects.count(),
    )
    output = seed()
    assert (
        Lead.objects.count(),
        Interaction.objects.count(),
        FollowUp.objects.count(),
        User.objects.count(),
    ) == counts
    assert "0 new leads" in output


def test_seed_is_deterministic_for_a_seed() -> None:
    seed()
    first = digest()
    Lead.objects.all().delete()
    seed()
    assert digest() == first
    Lead.objects.all().delete()
    call_command(
        "seed_demo", "--leads", "150", "--seed", "4", "--now", "2026-06-01", "--skip-apps", stdout=StringIO()
    )
    assert digest() != first


def test_engagement_relates_to_outcome() -> None:
    """The demo must carry signal: won leads engaged more before closing than lost ones."""
    call_command(
        "seed_demo", "--leads", "600", "--seed", "1", "--now", "2026-06-01", "--skip-apps", stdout=StringIO()
    )
    per_status = {
        row["status"]: row["n"] / row["leads"]
        for row in Lead.objects.filter(status__in=["won", "lost"])
        .values("status")
        .annotate(leads=Count("id", distinct=True), n=Count("interactions"))
    }
    assert per_status["won"] > 1.3 * per_status["lost"]


def test_bad_options_are_refused_plainly() -> None:
    with pytest.raises(CommandError, match="not a date"):
        call_command("seed_demo", "--now", "yesterday-ish", stdout=StringIO())
    with pytest.raises(CommandError, match="--leads"):
        call_command("seed_demo", "--leads", "-5", stdout=StringIO())


def test_import_xeducation_adds_past_outcomes_without_leaky_columns(settings) -> None:
    if not (settings.SHARED_DATA_DIR / "xeducation_leads.csv").exists():
        pytest.skip("shared data folder not beside the project")
    seed("--import-xeducation", "--xeducation-limit", "300")
    imported = Lead.objects.filter(custom__has_key="xeducation_prospect_id")
    assert imported.count() == 300
    assert imported.filter(status="won").exists()
    assert imported.filter(status="lost").exists()
    assert not any("Tags" in lead.custom or "Lead Quality" in lead.custom for lead in imported)
    seed("--import-xeducation", "--xeducation-limit", "300")
    assert imported.count() == 300


def test_full_demo_seed_scores_leads_trains_a_model_and_sets_up_the_chat_site() -> None:
    from chatbot.models import Site
    from scoring.ml.models import ModelVersion
    from scoring.models import Rule

    out = StringIO()
    call_command(
        "seed_demo",
        *("--leads", "800", "--seed", "2", "--now", "2026-06-01"),
        *("--site-origin", "http://127.0.0.1:8011/"),
        stdout=out,
    )
    text = out.getvalue()
    assert Rule.objects.count() >= 25
    assert not Lead.objects.filter(scored_at__isnull=True).exists()  # every lead has a score
    assert Lead.objects.filter(grade="").count() < Lead.objects.count()
    promoted = ModelVersion.objects.get(is_promoted=True)
    assert f"version {promoted.pk}" in text or "Promoted" in text
    assert Lead.objects.filter(ml_probability__isnull=False).count() == Lead.objects.count()
    site = Site.objects.get(public_key="pk_demo_rosas_bakery")
    assert "http://127.0.0.1:8011" in site.allowed_origins  # `make demo PORT=8011` keeps the widget working
    assert "http://127.0.0.1:8000" in site.allowed_origins

    again = StringIO()
    call_command("seed_demo", "--leads", "800", "--seed", "2", "--now", "2026-06-01", stdout=again)
    assert "already in use" in again.getvalue()  # re-seeding keeps the model
    assert ModelVersion.objects.count() == 1


def test_a_site_origin_that_is_not_an_origin_is_refused_before_anything_is_written() -> None:
    with pytest.raises(CommandError, match="not an origin"):
        call_command("seed_demo", "--site-origin", "127.0.0.1:8000/page", stdout=StringIO())
    assert not Lead.objects.exists()


def _latest_times() -> list[object]:
    from django.db.models import Max

    leads = Lead.objects.aggregate(
        Max("created_at"),
        Max("last_activity_at"),
        Max("closed_at"),
        Max("qualified_at"),
        Max("status_changed_at"),
    )
    interactions = Interaction.objects.aggregate(Max("occurred_at"), Max("created_at"))
    return [t for t in (*leads.values(), *interactions.values()) if t is not None]


def test_seeded_history_never_happens_after_now() -> None:
    """The demo showed "Last activity: 4 hours from now": activity ran to midnight + 20 h."""
    from datetime import UTC, datetime

    now = datetime(2026, 6, 1, 1, 30, tzinfo=UTC)  # early in the day, as when the demo is started at night
    call_command(
        "seed_demo",
        "--leads",
        "300",
        "--seed",
        "5",
        "--now",
        now.isoformat(),
        "--skip-apps",
        stdout=StringIO(),
    )
    assert max(_latest_times()) <= now
    assert not Lead.objects.filter(last_activity_at__gt=now).exists()


def test_seed_with_the_real_clock_has_nothing_after_now() -> None:
    from django.utils import timezone

    call_command("seed_demo", "--leads", "200", "--seed", "6", "--skip-apps", stdout=StringIO())
    assert max(_latest_times()) <= timezone.now()


def test_seed_refuses_a_now_in_the_future() -> None:
    with pytest.raises(CommandError, match="in the future"):
        call_command("seed_demo", "--now", "2999-01-01", "--skip-apps", stdout=StringIO())
