"""The import path: leadcrm.services.import_leads through dataio.services.import_table."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audit.models import Entry
from dataio import columns, services
from dataio.parsing import read_table
from leadcrm.models import Consent, ConsentSource, Interaction, InteractionKind, Lead
from scoring import defaults
from tests.factories import make_lead, make_manager

pytestmark = pytest.mark.django_db


def run(text: str, *, dry_run: bool = False, on_duplicate: str = "skip", user=None, mapping=None):
    table = read_table(text.encode(), "leads.csv")
    return services.import_table(
        table,
        mapping or columns.suggest(table.headers),
        on_duplicate=on_duplicate,
        dry_run=dry_run,
        user=user,
    )


def thousand_rows_with_three_bad() -> str:
    lines = ["first_name,email,country,employees"]
    for i in range(1000):
        lines.append(f"P{i},p{i}@example.com,DE,{i}")
    lines[101] = "Bad,not-an-email,DE,5"  # line 102
    lines[501] = "Bad,b501@example.com,Germany,5"  # line 502
    lines[901] = "Bad,b901@example.com,DE,-3"  # line 902
    return "\n".join(lines) + "\n"


def test_997_good_rows_import_and_the_3_bad_ones_are_reported_by_line() -> None:
    result = run(thousand_rows_with_three_bad())
    assert result.count("create") == 997
    assert [(r.line, r.reason.split(":")[0]) for r in result.refused] == [
        (102, "email"),
        (502, "country"),
        (902, "employee_count"),
    ]
    assert Lead.objects.count() == 997
    assert not Lead.objects.filter(email="not-an-email").exists()


def test_dry_run_reports_the_same_and_writes_nothing() -> None:
    make_lead(email="p5@example.com")
    result = run(thousand_rows_with_three_bad(), dry_run=True)
    assert (result.count("create"), result.count("skip"), len(result.refused)) == (996, 1, 3)
    assert Lead.objects.count() == 1
    assert not Entry.objects.filter(summary__startswith="Import").exists()


def test_same_email_twice_in_a_file_imports_the_first_and_refuses_the_second() -> None:
    result = run("email,first_name\nAnn@Example.com,Ann\nann@example.com,Annie\n")
    assert result.count("create") == 1
    assert result.refused[0].line == 3
    assert "line 2" in result.refused[0].reason
    assert Lead.objects.get().first_name == "Ann"


def test_duplicates_with_the_database_are_skipped_or_updated_as_chosen() -> None:
    lead = make_lead(email="known@example.com", first_name="Old", city="Bonn", custom={"a": 1})
    text = "email,first_name,city,plan\nKNOWN@example.com,New,,Pro\n"
    skipped = run(text, on_duplicate="skip")
    assert skipped.count("skip") == 1
    assert "skipped" in skipped.rows[0].reason
    lead.refresh_from_db()
    assert lead.first_name == "Old"
    updated = run(text, on_duplicate="update")
    assert updated.count("update") == 1
    assert updated.lead_ids == [lead.pk]
    lead.refresh_from_db()
    assert lead.first_name == "New"
    assert lead.city == "Bonn"  # a blank cell leaves the stored value
    assert lead.custom == {"a": 1, "plan": "Pro"}  # new columns join the old ones
    assert Lead.objects.count() == 1


def test_consent_columns_write_consent_rows_from_the_import_source() -> None:
    manager = make_manager()
    existing = make_lead(email="was@example.com")
    run(
        "email,newsletter\nyes@example.com,yes\nno@example.com,no\nwas@example.com,yes\n",
        on_duplicate="update",
        user=manager,
    )
    yes = Lead.objects.get(email="yes@example.com")
    assert yes.marketing_consent
    assert yes.marketing_consent_at is not None
    assert not Lead.objects.get(email="no@example.com").marketing_consent
    existing.refresh_from_db()
    assert existing.marketing_consent
    assert existing.marketing_consent_at is not None
    consents = Consent.objects.order_by("lead_id")
    assert [(c.lead_id, c.purpose, c.granted, c.source, c.recorded_by) for c in consents] == [
        (existing.pk, "marketing", True, ConsentSource.IMPORT, manager),
        (yes.pk, "marketing", True, ConsentSource.IMPORT, manager),
    ]
    # Withdrawn in a later file: recorded as withdrawn, the flag and its time cleared.
    run("email,newsletter\nyes@example.com,no\n", on_duplicate="update", user=manager)
    yes.refresh_from_db()
    assert not yes.marketing_consent
    assert yes.marketing_consent_at is None
    assert Consent.objects.filter(lead=yes, granted=False).count() == 1


def test_outcomes_are_imported_with_their_dates_stamps_and_a_timeline_note() -> None:
    text = (
        "email,outcome,closed,lost reason\n"
        "w@example.com,Won,2026-03-14,\n"
        "l@example.com,lost,2026-05-02,Too expensive\n"
        "x@example.com,lost,2026-05-02,\n"
        "o@example.com,open,,\n"
        "f@example.com,won,2999-01-01,\n"
    )
    result = run(text)
    assert result.count("create") == 3
    assert result.outcomes == 2
    assert {r.line: r.reason.split(":")[0] for r in result.refused} == {4: "lost_reason", 6: "outcome_date"}
    won = Lead.objects.get(email="w@example.com")
    assert won.status == "won"
    assert won.closed_at == won.status_changed_at
    assert won.closed_at.date().isoformat() == "2026-03-14"
    assert won.created_at <= won.closed_at  # training describes it as of closed_at
    lost = Lead.objects.get(email="l@example.com")
    assert (lost.status, lost.lost_reason) == ("lost", "Too expensive")
    note = Interaction.objects.get(lead=lost)
    assert note.kind == InteractionKind.NOTE
    assert note.payload["status_to"] == "lost"
    assert note.occurred_at == lost.closed_at
    assert Lead.objects.get(email="o@example.com").status == "new"


def test_imported_leads_are_scored_and_the_import_is_in_the_audit_trail() -> None:
    defaults.install_default_rules()
    manager = make_manager()
    run("email,first_name,company,employees\nceo@bigco.example,Ann,BigCo,900\n", user=manager)
    lead = Lead.objects.get()
    assert lead.scored_at is not None
    assert lead.grade
    entry = Entry.objects.get(summary__startswith="Import")
    assert (entry.actor, entry.action) == (manager, "created")
    assert "1 leads created" in entry.summary


def test_a_big_import_queues_one_full_recompute(monkeypatch, django_capture_on_commit_callbacks) -> None:
    from scoring.models import RecomputeRun

    monkeypatch.setattr(services, "RESCORE_INLINE_MAX", 2)
    with django_capture_on_commit_callbacks(execute=True):
        run("email\na@example.com\nb@example.com\nc@example.com\n")
    run_row = RecomputeRun.objects.get()
    assert run_row.status == RecomputeRun.Status.DONE  # eager: the recompute ran after commit
    assert Lead.objects.filter(scored_at__isnull=True).count() == 0


def test_a_crash_mid_import_leaves_nothing_half_imported(monkeypatch) -> None:
    def boom(ids, **kwargs):
        raise RuntimeError("scoring broke")

    monkeypatch.setattr(services, "rescore_leads", boom)
    with pytest.raises(RuntimeError):
        run("email,newsletter\na@example.com,yes\n")
    assert Lead.objects.count() == 0
    assert Consent.objects.count() == 0


def test_owner_column_assigns_by_username_or_refuses() -> None:
    manager = make_manager("boss")
    result = run("email,owner\na@example.com,Boss\nb@example.com,nobody\n")
    assert Lead.objects.get(email="a@example.com").owner == manager
    assert result.refused[0].line == 3
    assert "owner" in result.refused[0].reason


def test_created_at_in_the_past_is_kept() -> None:
    run("email,created\na@example.com,2025-01-31\n")
    assert Lead.objects.get().created_at.date().isoformat() == "2025-01-31"
    assert Lead.objects.get().created_at < timezone.now()
