"""Export: everything held about a person, as JSON and as one long CSV, from the pages and the CLI."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError
from django.urls import reverse

from audit.models import Entry
from privacy import services
from scoring.models import ScoreSnapshot

pytestmark = pytest.mark.django_db


def test_json_export_holds_everything_about_the_person(person) -> None:
    ScoreSnapshot.objects.create(lead=person.lead, rule_score=15, grade="B2")

    data = services.person_data(person.lead)

    assert data["lead"]["email"] == "grace@example.com"
    assert data["lead"]["custom"] == {"favourite_cake": "lemon"}
    assert data["scores"]["reasons"] == [
        {"rule": "Pricing page", "points": 15, "reason": "Visited pricing: +15"}
    ]
    assert data["scores"]["model_factors"][0]["label"] == "Industry: Software"
    assert [h["grade"] for h in data["scores"]["history"]] == ["B2"]
    assert {i["kind"] for i in data["interactions"]} == {"call", "page_view"}
    [transcript] = data["chat_transcripts"]
    assert [m["text"] for m in transcript["messages"]] == ["Hi, I am Grace Hopper", "Hello! How can we help?"]
    [consent] = data["consents"]
    assert (consent["purpose"], consent["source"], consent["text_version"]) == ("contact", "widget", "v2")
    assert data["follow_ups"][0]["note"] == "Call Grace about the lemon cake"
    json.dumps(data)  # JSON-able as it is


def test_csv_export_is_one_long_table_with_the_same_content(person) -> None:
    body, content_type = services.render_export(services.person_data(person.lead), "csv")
    assert content_type.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert list(rows[0]) == ["record", "record_id", "field", "value"]
    values = {(r["record"], r["field"], r["value"]) for r in rows}
    assert ("lead", "email", "grace@example.com") in values
    assert ("score_reason", "reason", "Visited pricing: +15") in values
    assert ("model_factor", "label", "Industry: Software") in values
    assert ("chat_message", "text", "Hi, I am Grace Hopper") in values
    assert ("consent", "source", "widget") in values
    assert ("follow_up", "note", "Call Grace about the lemon cake") in values
    assert ("lead", "custom", '{"favourite_cake": "lemon"}') in values
    message_ids = [r["record_id"] for r in rows if r["record"] == "chat_message" and r["field"] == "text"]
    assert message_ids == ["1.1", "1.2"]


def test_manager_downloads_json_and_csv_and_each_is_audited(client, manager, person) -> None:
    client.force_login(manager)
    url = reverse("privacy:export", args=[person.lead.pk])

    as_json = client.post(url, {"format": "json"})
    assert as_json.status_code == 200
    assert as_json["Content-Disposition"] == f'attachment; filename="lead-{person.lead.pk}-data.json"'
    assert json.loads(as_json.content)["lead"]["email"] == "grace@example.com"

    as_csv = client.post(url, {"format": "csv"})
    assert as_csv.status_code == 200
    assert b"grace@example.com" in as_csv.content

    bad = client.post(url, {"format": "xml"})
    assert bad.status_code == 302  # back to the page with the message

    exports = Entry.objects.filter(action="exported", lead_id=person.lead.pk)
    assert exports.count() == 2
    assert all("grace" not in e.summary.lower() for e in exports)
    assert {e.actor for e in exports} == {manager}


def test_the_find_page_finds_a_person_by_email_and_says_when_nobody_matches(client, manager, person) -> None:
    client.force_login(manager)
    found = client.get(reverse("privacy:index"), {"email": "GRACE@example.com"})
    assert found.status_code == 200
    assert b"Grace Hopper" in found.content
    assert reverse("privacy:erase", args=[person.lead.pk]).encode() in found.content
    nobody = client.get(reverse("privacy:index"), {"email": "nobody@example.com"})
    assert b"No lead has this email" in nobody.content
    invalid = client.get(reverse("privacy:index"), {"email": "not an email"})
    assert invalid.status_code == 400


def test_salespeople_get_403_on_every_manager_page(client, salesperson, person) -> None:
    client.force_login(salesperson)
    lead_id = person.lead.pk
    for url in (
        reverse("privacy:index"),
        reverse("privacy:requests"),
        reverse("privacy:retention"),
        reverse("privacy:erase", args=[lead_id]),
    ):
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("privacy:export", args=[lead_id]), {"format": "json"}).status_code == 403
    assert client.post(reverse("privacy:erase", args=[lead_id]), {"confirm": "ERASE"}).status_code == 403
    person.lead.refresh_from_db()
    assert person.lead.erased_at is None
    assert not Entry.objects.filter(action="exported").exists()


def test_anonymous_visitors_are_sent_to_log_in(client) -> None:
    response = client.get(reverse("privacy:index"))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_export_person_command_json_csv_file_and_unknown_email(person, tmp_path, capsys) -> None:
    call_command("export_person", "grace@example.com")
    out = capsys.readouterr().out
    assert json.loads(out)["lead"]["phone"] == "+1 555 0100"

    call_command("export_person", "grace@example.com", "--format", "csv")
    assert "record,record_id,field,value" in capsys.readouterr().out

    target = tmp_path / "grace.csv"
    call_command("export_person", "grace@example.com", "--format", "csv", "--output", str(target))
    assert "Hi, I am Grace Hopper" in target.read_text()

    with pytest.raises(CommandError, match="No lead has this email"):
        call_command("export_person", "nobody@example.com")


def test_export_person_command_exits_non_zero_on_unknown_email(person, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "export_person", "nobody@example.com"]).execute()
    assert exited.value.code == 1
    assert "No lead has this email" in capsys.readouterr().err
