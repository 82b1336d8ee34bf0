"""Erasing a person deletes their website tracking data; exporting it includes that data."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from chatbot import services as chat
from chatbot.models import Site
from leadcrm.models import Interaction, Lead
from leadcrm.services import create_lead
from privacy import services as privacy
from tests.factories import make_lead
from tests.tracking.conftest import page_view, send, visitor
from tracking import services
from tracking.models import EventType, TrackedEvent, VisitorLink

pytestmark = pytest.mark.django_db


def waiting(site: Site, vid: str, event_id: str, url: str = "https://shop.example/pricing") -> TrackedEvent:
    """An event stored in the anonymous table after its visitor was linked (it raced the link)."""
    now = timezone.now()
    return TrackedEvent.objects.create(
        site=site,
        visitor_id=vid,
        event_id=event_id,
        type=EventType.PAGE_VIEW,
        occurred_at=now,
        payload={"url": url, "title": "Pricing"},
        received_at=now,
    )


def link(site: Site, vid: str, lead: Lead) -> None:
    assert services.link_visitor(site_id=site.pk, visitor_id=vid, lead_id=lead.pk, via="signed_identity")


def pairs(model) -> set[tuple[int, str]]:
    return set(model.objects.values_list("site_id", "visitor_id"))


def test_erasure_deletes_the_leads_visitor_links_and_their_waiting_events_only(site, manager) -> None:
    other_site = Site.objects.create(name="Other shop", allowed_origins=["https://other.example"])
    person = create_lead(email="grace@example.com")
    someone = create_lead(email="ada@example.com")
    phone, laptop, theirs, anonymous = visitor(site), visitor(site), visitor(site), visitor(site)
    link(site, phone, person)
    link(site, laptop, person)
    link(site, theirs, someone)
    waiting(site, phone, "ev-phone-1")
    waiting(site, phone, "ev-phone-2")
    waiting(site, laptop, "ev-laptop-1")
    waiting(site, theirs, "ev-theirs-1")
    waiting(site, anonymous, "ev-anon-1")
    waiting(other_site, phone, "ev-same-id-other-site")  # the same id on another site is not linked

    privacy.erase_person(lead=person, by=manager)

    assert not VisitorLink.objects.filter(lead=person).exists()
    assert pairs(VisitorLink) == {(site.pk, theirs)}
    assert pairs(TrackedEvent) == {(site.pk, theirs), (site.pk, anonymous), (other_site.pk, phone)}
    assert TrackedEvent.objects.count() == 3
    # This process no longer sends the phone's events to the erased lead (no waiting for the cache).
    assert services.linked_lead(site.pk, phone) is None
    assert services.linked_lead(site.pk, theirs) == someone.pk


def test_retention_forgets_the_visitors_of_the_leads_it_anonymises(site, settings) -> None:
    settings.PRIVACY_RETENTION_MONTHS = 24
    long_ago = timezone.now() - timedelta(days=3 * 365)
    stale = make_lead(created_at=long_ago)
    active = make_lead()
    stale_vid, active_vid = visitor(site), visitor(site)
    link(site, stale_vid, stale)
    link(site, active_vid, active)
    waiting(site, stale_vid, "ev-stale")

    assert privacy.apply_retention() == 1

    assert pairs(VisitorLink) == {(site.pk, active_vid)}
    assert not TrackedEvent.objects.exists()


def test_after_erasure_the_same_browser_is_an_anonymous_visitor_again(client, site, manager) -> None:
    vid = visitor(site)
    conversation, _ = chat.start_conversation(site=site, visitor_id=vid)
    chat.post_visitor_message(conversation=conversation, text="Do you deliver?")
    conversation.refresh_from_db()
    lead_id = conversation.lead_id
    assert VisitorLink.objects.get(site=site, visitor_id=vid).lead_id == lead_id
    before = send(client, site, {"visitor_id": vid, "consent": True, "events": [page_view()]})
    assert before.json() == {"stored": 1, "duplicates": 0}
    on_timeline = Interaction.objects.filter(lead_id=lead_id).count()

    privacy.erase_person(lead=Lead.objects.get(pk=lead_id), by=manager)

    # The browser keeps its visitor id; its events wait as an unknown visitor's, not on the erased
    # lead (whose timeline would refuse them) and not dropped.
    after = send(client, site, {"visitor_id": vid, "consent": True, "events": [page_view()]})
    assert after.json() == {"stored": 1, "duplicates": 0}
    # The chat token the browser still holds does not link it to the erased lead again.
    token = {"visitor_id": vid, "consent": True, "chat_token": conversation.token, "events": [page_view()]}
    assert send(client, site, token).json() == {"stored": 1, "duplicates": 0}
    assert not services.link_visitor(site_id=site.pk, visitor_id=vid, lead_id=lead_id, via="chat")
    services.sweep()

    assert not VisitorLink.objects.exists()
    assert TrackedEvent.objects.filter(site=site, visitor_id=vid).count() == 2
    assert Interaction.objects.filter(lead_id=lead_id).count() == on_timeline


def test_the_export_includes_the_linked_visitor_ids_and_their_waiting_events(site) -> None:
    person = create_lead(email="grace@example.com")
    vid, stranger = visitor(site), visitor(site)
    link(site, vid, person)
    waiting(site, vid, "ev-raced", url="https://shop.example/cakes")
    waiting(site, stranger, "ev-stranger", url="https://shop.example/stranger")

    data = privacy.person_data(person)

    [linked] = data["website_visitors"]
    assert (linked["site"], linked["visitor_id"], linked["via"]) == ("Shop", vid, "signed_identity")
    [event] = data["website_events_waiting"]
    assert (event["visitor_id"], event["type"]) == (vid, "page_view")
    assert event["payload"]["url"] == "https://shop.example/cakes"
    body, _ = privacy.render_export(data, "csv")
    rows = {(r["record"], r["field"], r["value"]) for r in csv.DictReader(io.StringIO(body))}
    assert ("website_visitors", "visitor_id", vid) in rows
    assert (
        "website_events_waiting",
        "payload",
        '{"url": "https://shop.example/cakes", "title": "Pricing"}',
    ) in rows
    assert "stranger" not in body
