"""record() and the erasure scrub: the app-level half of the trail (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test import RequestFactory

from audit import services
from audit.models import AppendOnlyError, Entry
from leadcrm.models import Lead
from tests.factories import make_follow_up, make_lead

pytestmark = pytest.mark.django_db


def test_record_writes_who_what_and_the_path_without_query_string(manager) -> None:
    request = RequestFactory().get("/privacy/leads/7/export/?q=jane@example.com")
    entry = services.record(manager, "exported", "leadcrm.lead", 7, summary="JSON export", request=request)

    entry.refresh_from_db()
    assert (entry.actor, entry.actor_label, entry.action) == (manager, manager.username, "exported")
    assert (entry.target_type, entry.target_id, entry.lead_id) == ("leadcrm.lead", "7", 7)
    assert (entry.path, entry.method) == ("/privacy/leads/7/export/", "GET")


def test_record_takes_a_model_as_target_and_refuses_unknown_actions(manager) -> None:
    entry = services.record(
        manager, action="changed", target_type=Lead, target_id=3, before={"a": 1}, after={"a": 2}
    )
    assert entry.target_type == "leadcrm.lead"
    assert entry.changes == [("a", 1, 2)]
    with pytest.raises(ValueError, match="Unknown audit action 'peeked'"):
        services.record(manager, "peeked", Lead, 3)


def test_orm_refuses_to_change_or_delete_audit_rows(manager) -> None:
    entry = services.record(manager, "viewed", Lead, 1)
    entry.summary = "forged"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        Entry.objects.filter(pk=entry.pk).update(summary="forged")
    with pytest.raises(AppendOnlyError):
        Entry.objects.all().delete()


def test_scrub_person_removes_their_data_and_keeps_one_erasure_row(manager) -> None:
    lead = make_lead(first_name="Jane", email="jane@example.com")
    other = make_lead(first_name="Keep")
    make_follow_up(lead, note="Jane prefers mornings")
    Lead.objects.filter(pk=lead.pk).update(phone="+44 20 5555")  # a "changed" row on PostgreSQL
    services.record(manager, "viewed", Lead, lead.pk)
    services.record(manager, "exported", Lead, lead.pk, after={"email": "jane@example.com"})
    services.record(manager, "viewed", Lead, other.pk)
    services.record(manager, "viewed", "leadcrm.lead", other.pk, after={"first_name": "Keep"})

    with transaction.atomic():
        lead_id = lead.pk
        lead.delete()  # the erasure itself (its trigger row holds the old values until scrubbed)
        scrubbed = services.scrub_person(lead_id)

    rows = list(Entry.objects.filter(lead_id=lead_id))
    assert scrubbed == len(rows) - 1  # every row but the erasure note added by the scrub
    dump = str([(r.before, r.after, r.summary) for r in rows])
    for personal in ("Jane", "jane@example.com", "+44 20 5555", "mornings"):
        assert personal not in dump
    erased = [r for r in rows if r.action == "erased"]
    assert len(erased) == 1
    assert "erased" in erased[0].summary.lower()
    assert {r.actor for r in rows if r.action in ("viewed", "exported")} == {manager}  # who and when stay
    assert Entry.objects.filter(lead_id=other.pk, after={"first_name": "Keep"}).exists()  # others untouched


def test_scrub_keeps_the_callers_erasure_row_and_adds_none(manager) -> None:
    services.record(manager, "erased", Lead, 42, summary="Erased on the person's request (ticket 17)")
    services.scrub_person(42)
    (row,) = Entry.objects.filter(lead_id=42)
    assert row.summary == "Erased on the person's request (ticket 17)"


def test_scrub_people_handles_many_leads_at_once(manager) -> None:
    for lead_id in (1, 2, 3):
        services.record(manager, "exported", Lead, lead_id, after={"email": f"p{lead_id}@example.com"})
    assert services.scrub_people([1, 2, 3, 3]) == 3
    assert not Entry.objects.filter(lead_id__in=[1, 2, 3], after__isnull=False).exists()
    assert Entry.objects.filter(action="erased").count() == 3


def test_the_scrub_switch_does_not_outlive_the_scrub(manager) -> None:
    services.record(manager, "viewed", Lead, 5)
    with transaction.atomic():
        services.scrub_person(5)
        with pytest.raises(AppendOnlyError):
            Entry.objects.filter(lead_id=5).delete()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('audit.scrub', true)")
                assert cursor.fetchone()[0] in ("", None)
