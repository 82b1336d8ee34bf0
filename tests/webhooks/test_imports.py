"""Imports (dataio → leadcrm.services.import_leads) emit the lead events too, set-based per chunk."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from dataio import columns
from dataio import services as dataio
from dataio.parsing import read_table
from leadcrm import services as crm
from leadcrm.models import Lead
from tests.factories import make_lead, make_user
from webhooks import services
from webhooks.models import Delivery, Event, Webhook

pytestmark = pytest.mark.django_db

STATUS_EVENTS = [Event.LEAD_CREATED, Event.STATUS_CHANGED, Event.LEAD_WON, Event.LEAD_LOST]


def hook(events: list[str], url: str = "https://93.184.215.14/hook") -> Webhook:
    return services.create_webhook(name="CRM sync", url=url, events=events, by=None)


def run(text: str, *, dry_run: bool = False, on_duplicate: str = "skip"):
    table = read_table(text.encode(), "leads.csv")
    return dataio.import_table(
        table, columns.suggest(table.headers), on_duplicate=on_duplicate, dry_run=dry_run
    )


def delivered(webhook: Webhook, event: str) -> dict[int, dict]:
    """lead id → the event's data, for each delivery of `event` to `webhook`."""
    rows = Delivery.objects.filter(webhook=webhook, event=event).values_list("payload", flat=True)
    data = [payload["data"] for payload in rows]
    by_lead = {d["lead"]["id"]: d for d in data}
    assert len(by_lead) == len(data), "one delivery per lead"
    return by_lead


def test_each_imported_lead_is_one_lead_created_delivery_and_skipped_or_refused_rows_none() -> None:
    owner = make_user("seller")
    known = make_lead(email="known@example.com")
    created_hook = hook([Event.LEAD_CREATED])
    other_hook = hook([Event.LEAD_WON], url="https://93.184.215.14/other")
    text = (
        "email,first_name,source,owner\n"
        "ann@example.com,Ann,referral,seller\n"
        "bob@example.com,Bob,,\n"
        "known@example.com,Known,,\n"  # in LeadCRM already: skipped
        "not-an-email,Bad,,\n"  # refused
        "ANN@example.com,Twice,,\n"  # the same email again in the file: refused
        "cy@example.com,Cy,,nobody\n"  # unknown owner: refused
    )

    result = run(text)

    assert (result.count("create"), result.count("skip"), len(result.refused)) == (2, 1, 3)
    ann = Lead.objects.get(email="ann@example.com")
    bob = Lead.objects.get(email="bob@example.com")
    data = delivered(created_hook, Event.LEAD_CREATED)
    assert set(data) == {ann.pk, bob.pk}  # none for the skipped lead or the refused rows
    assert known.pk not in data
    # The same shape as a lead created one by one (lead_summary), read back from the stored lead.
    summary = data[ann.pk]["lead"]
    assert set(summary) == set(services.lead_summary(ann))
    assert summary["status"] == "new"
    assert summary["source"] == "referral"
    assert summary["owner_id"] == owner.pk
    assert summary["url"] == services.lead_url(ann.pk)
    assert Delivery.objects.filter(webhook=other_hook).count() == 0  # not subscribed to lead.created


def test_imported_outcomes_emit_status_changed_won_and_lost_like_change_status() -> None:
    fresh = make_lead(email="fresh@example.com")  # new → won
    working = make_lead(email="working@example.com", status="working")  # working → lost
    already = make_lead(email="already@example.com", status="won")  # won → won: no change, no event
    plain = make_lead(email="plain@example.com")  # updated without an outcome: no status event
    webhook = hook(STATUS_EVENTS)
    text = (
        "email,first_name,outcome,closed,lost reason\n"
        "fresh@example.com,,won,2025-03-14,\n"
        "working@example.com,,lost,2025-05-02,Too expensive\n"
        "already@example.com,,won,2025-06-01,\n"
        "plain@example.com,Plain,,,\n"
        "new@example.com,,lost,2025-05-02,No budget\n"  # created closed: lead.created (status lost)
    )

    result = run(text, on_duplicate="update")

    assert (result.count("create"), result.count("update")) == (1, 4)
    new = Lead.objects.get(email="new@example.com")
    changed = delivered(webhook, Event.STATUS_CHANGED)
    assert {pk: (d["status_from"], d["status_to"]) for pk, d in changed.items()} == {
        fresh.pk: ("new", "won"),
        working.pk: ("working", "lost"),
    }
    assert changed[fresh.pk]["lead"]["status"] == "won"
    won = delivered(webhook, Event.LEAD_WON)
    assert set(won) == {fresh.pk}
    lost = delivered(webhook, Event.LEAD_LOST)
    assert set(lost) == {working.pk}
    assert lost[working.pk]["lost_reason"] == "Too expensive"
    created = delivered(webhook, Event.LEAD_CREATED)
    assert set(created) == {new.pk}
    assert created[new.pk]["lead"]["status"] == "lost"
    assert already.pk not in changed
    assert plain.pk not in changed


def test_a_dry_run_or_a_rolled_back_import_emits_nothing_and_a_real_one_does(monkeypatch) -> None:
    webhook = hook(STATUS_EVENTS)
    make_lead(email="old@example.com")
    text = "email,outcome,closed\na@example.com,,\nb@example.com,,\nold@example.com,won,2025-01-02\n"

    result = run(text, dry_run=True, on_duplicate="update")
    assert (result.count("create"), result.count("update")) == (2, 1)
    assert not Delivery.objects.exists()

    def boom(ids, **kwargs):
        raise RuntimeError("scoring broke after the rows were written")

    with monkeypatch.context() as patched:
        patched.setattr(dataio, "rescore_leads", boom)
        with pytest.raises(RuntimeError):
            run(text, on_duplicate="update")
    assert not Delivery.objects.exists()  # the events rolled back with the leads

    run(text, on_duplicate="update")
    assert sorted(Delivery.objects.filter(webhook=webhook).values_list("event", flat=True)) == sorted(
        ["lead.created", "lead.created", "lead.status_changed", "lead.won"]
    )


def _import(n: int, offset: int) -> list[str]:
    """Import n new leads straight through leadcrm.services; returns the statements it ran, less
    the INSERTs: how bulk writes are split is the backend's (SQLite's 999-variable limit splits a
    bulk_create of 60-column leads; PostgreSQL takes big batches by COPY, which Django does not log)."""
    rows = [
        crm.ImportRow(line=i + 2, fields={"email": f"p{offset + i}@example.com", "first_name": f"P{i}"})
        for i in range(n)
    ]
    with CaptureQueriesContext(connection) as queries:
        result = crm.import_leads(rows=rows)
    assert result.count("create") == n
    return [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("INSERT INTO")]


def test_the_queries_of_an_import_with_webhooks_do_not_grow_with_its_rows() -> None:
    created, won = hook([Event.LEAD_CREATED]), hook([Event.LEAD_WON], url="https://93.184.215.14/b")

    small = _import(10, offset=0)
    large = _import(200, offset=1000)

    assert len(small) == len(large)
    assert sum("webhooks_webhook" in sql for sql in large) == 1  # one read of the subscriptions
    assert Delivery.objects.filter(webhook=won).count() == 0
    # The 200 deliveries of the big chunk (COPY on PostgreSQL) are rows like the 10 (INSERT).
    rows = list(Delivery.objects.filter(webhook=created, event=Event.LEAD_CREATED))
    assert len(rows) == 210
    assert len({d.event_id for d in rows}) == 210
    assert {(d.status, d.attempts, d.dedupe_key) for d in rows} == {("pending", 0, "")}
    assert all(d.next_attempt_at == d.created_at for d in rows)
    leads = dict(Lead.objects.values_list("pk", "email"))
    assert sorted(leads[d.payload["data"]["lead"]["id"]] for d in rows) == sorted(
        [f"p{i}@example.com" for i in range(10)] + [f"p{1000 + i}@example.com" for i in range(200)]
    )
    assert {d.payload["data"]["lead"]["url"] for d in rows} == {services.lead_url(pk) for pk in leads}
    assert 10 < services.COPY_FROM <= 200  # both ways of writing deliveries were taken


def test_every_chunk_is_emitted_and_the_transaction_nudges_the_deliveries_once(
    monkeypatch, django_capture_on_commit_callbacks
) -> None:
    monkeypatch.setattr(crm, "IMPORT_CHUNK", 5)
    webhook = hook([Event.LEAD_CREATED])
    sent: list[str] = []
    monkeypatch.setattr(services, "_deliver_in_background", lambda: sent.append("nudge"))
    rows = [crm.ImportRow(line=i + 2, fields={"email": f"c{i}@example.com"}) for i in range(12)]

    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        crm.import_leads(rows=rows)

    assert Delivery.objects.filter(webhook=webhook).count() == 12  # three chunks: 5 + 5 + 2
    assert [c for c in callbacks if c is services._nudge] == [services._nudge]
    assert sent == ["nudge"]


def test_a_nudge_dropped_with_a_rolled_back_savepoint_is_registered_again(
    monkeypatch, django_capture_on_commit_callbacks
) -> None:
    hook([Event.LEAD_CREATED])
    monkeypatch.setattr(services, "_deliver_in_background", lambda: None)

    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        try:
            with transaction.atomic():
                crm.create_lead(email="gone@example.com")  # its event and nudge roll back
                raise RuntimeError
        except RuntimeError:
            pass
        crm.create_lead(email="kept@example.com")
        crm.create_lead(email="also@example.com")

    assert [c for c in callbacks if c is services._nudge] == [services._nudge]
    assert Delivery.objects.count() == 2
