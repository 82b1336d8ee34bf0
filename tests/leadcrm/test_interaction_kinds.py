"""The email_sent and custom_event kinds: outcomes, slugs and channels, the timeline, the data migration."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core.cache import cache
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from leadcrm import panel_html, services
from leadcrm.forms import TimelineFilterForm
from leadcrm.models import Interaction, InteractionKind
from tests.factories import make_interaction, make_lead

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
MIGRATION = "leadcrm.migrations.0010_interaction_kinds_email_sent_custom_event"


@pytest.fixture(autouse=True)
def _forget_lead_views() -> Iterator[None]:
    yield
    cache.clear()  # the audit trail's "viewed" marks: on SQLite the next test's lead reuses this id


def test_the_email_sent_outcome_is_recorded_as_email_sent(client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    client.force_login(salesperson)
    response = client.post(
        reverse("leadcrm:log_outcome", args=[lead.pk]), {"kind": "email", "notes": "Sent the quote"}, **HX
    )
    assert response.status_code == 200
    [row] = Interaction.objects.filter(lead=lead)
    assert row.kind == InteractionKind.EMAIL_SENT
    assert row.channel == "email"
    assert row.payload == {"text": "Sent the quote", "outcome": "email"}
    assert row.logged_by == salesperson


def test_the_new_kinds_have_slugs_default_channels_and_pass_the_check_constraint() -> None:
    lead = make_lead()
    sent = services.record_interaction(lead=lead, kind="email_sent", payload={"subject": "Hello"})
    event = services.record_interaction(lead=lead, kind="custom_event", payload={"name": "signup"})
    assert (sent.kind, sent.channel) == (InteractionKind.EMAIL_SENT, "email")
    assert (event.kind, event.channel) == (InteractionKind.CUSTOM_EVENT, "web")
    assert Interaction.objects.filter(kind__in=[21, 22]).count() == 2  # the database's check let them in
    form = TimelineFilterForm({"kind": "custom_event"})
    assert form.kind_value() == 22


def test_a_custom_event_reads_as_its_name_on_the_timeline_escaped() -> None:
    row = Interaction(
        pk=1,
        kind=InteractionKind.CUSTOM_EVENT,
        occurred_at=timezone.now(),
        payload={
            "name": "<b>signup</b>",
            "event": "<b>signup</b>",
            "page": "https://x.example/",
            "title": "Home",
        },
    )
    row.when_iso, row.when_text = row.occurred_at.isoformat(), "now"
    html = panel_html.timeline_item(row)
    assert "<strong>Custom event</strong> — &lt;b&gt;signup&lt;/b&gt;" in html
    assert "Home" not in html  # the page's title is not what happened
    assert 'class="kind-custom_event"' in html


def test_the_data_migration_turns_old_notes_into_the_new_kinds_and_back() -> None:
    migration = importlib.import_module(MIGRATION)
    lead = make_lead()
    # As the old code wrote them: outreach's send_email, the "Email sent" outcome, a tracked custom event.
    outreach = make_interaction(
        lead,
        "note",
        channel="email",
        payload={"outcome": "email", "direction": "out", "subject": "Your quote", "text": "Hi"},
    )
    logged = make_interaction(lead, "note", channel="email", payload={"text": "Sent it", "outcome": "email"})
    tracked = make_interaction(
        lead,
        "note",
        channel="web",
        payload={
            "page": "https://shop.example/",
            "via": "tracking",
            "event": "signup",
            "text": "Website event: signup",
            "props": {},
        },
    )
    # Left alone: a note that is not an email sent, a call, a hand-written note on the web channel.
    plain_note = make_interaction(lead, "note", channel="email", payload={"text": "Asked for a quote"})
    other_channel = make_interaction(lead, "note", channel="other", payload={"text": "x", "outcome": "email"})
    call = make_interaction(lead, "call", channel="phone", payload={"outcome": "email"})
    web_note = make_interaction(lead, "note", channel="web", payload={"event": "signup"})

    migration.forwards(apps, SimpleNamespace(connection=connection))

    kinds = dict(Interaction.objects.values_list("pk", "kind"))
    assert kinds[outreach.pk] == kinds[logged.pk] == InteractionKind.EMAIL_SENT
    assert kinds[tracked.pk] == InteractionKind.CUSTOM_EVENT
    for row in (plain_note, other_channel, web_note):
        assert kinds[row.pk] == InteractionKind.NOTE
    assert kinds[call.pk] == InteractionKind.CALL
    tracked.refresh_from_db()
    assert tracked.payload["name"] == tracked.payload["event"] == "signup"  # what a rule's pattern matches
    assert tracked.payload["props"] == {}
    outreach.refresh_from_db()
    assert outreach.payload == {"outcome": "email", "direction": "out", "subject": "Your quote", "text": "Hi"}

    migration.backwards(apps, SimpleNamespace(connection=connection))
    assert set(Interaction.objects.exclude(pk=call.pk).values_list("kind", flat=True)) == {
        InteractionKind.NOTE
    }
