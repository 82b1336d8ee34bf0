"""leadcrm.track(name) lands on the lead's timeline as a custom_event named in payload "name"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from leadcrm.models import Interaction, InteractionKind
from tests.factories import make_lead
from tests.tracking.conftest import send, visitor
from tracking import services
from tracking.models import EventType, TrackedEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _forget_lead_views() -> Iterator[None]:
    yield
    cache.clear()  # the audit trail's "viewed" marks: on SQLite the next test's lead reuses this id


SIGNUP = {
    "id": "signup0001",
    "type": "custom",
    "url": "https://shop.example/welcome",
    "title": "Welcome",
    "name": "signup",
    "props": {"plan": "pro"},
}


def test_a_custom_event_of_a_linked_visitor_is_a_custom_event_on_the_timeline(
    client, site, salesperson
) -> None:
    lead = make_lead(owner=salesperson)
    vid = visitor(site)
    assert services.link_visitor(site_id=site.pk, visitor_id=vid, lead_id=lead.pk, via="signed_identity")

    response = send(client, site, {"visitor_id": vid, "consent": True, "events": [SIGNUP]})

    assert response.json() == {"stored": 1, "duplicates": 0}
    row = Interaction.objects.get(lead=lead)
    assert row.kind == InteractionKind.CUSTOM_EVENT
    assert row.channel == "web"
    assert row.client_event_id == "trk_signup0001"
    assert row.payload["name"] == "signup"
    assert row.payload["event"] == "signup"  # the older key, kept
    assert row.payload["props"] == {"plan": "pro"}
    assert row.payload["page"] == "https://shop.example/welcome"
    assert "url" not in row.payload  # a URL pattern does not match the page a custom event fired on
    client.force_login(salesperson)
    page = client.get(reverse("leadcrm:lead_timeline", args=[lead.pk])).content.decode()
    assert "<strong>Custom event</strong> — signup" in page


def test_a_custom_event_that_waited_from_before_the_kind_gets_its_name_when_moved(site) -> None:
    lead = make_lead()
    vid = visitor(site)
    # Stored anonymously by the old code: named only in "event", with a note's text.
    TrackedEvent.objects.create(
        site=site,
        visitor_id=vid,
        event_id="old00001",
        type=EventType.CUSTOM,
        occurred_at=timezone.now(),
        received_at=timezone.now(),
        payload={
            "page": "https://shop.example/",
            "via": "tracking",
            "event": "signup",
            "text": "Website event: signup",
        },
    )
    services.link_visitor(site_id=site.pk, visitor_id=vid, lead_id=lead.pk, via="signed_identity")

    assert services.move_waiting_events(site_id=site.pk, visitor_id=vid) == 1

    row = Interaction.objects.get(lead=lead)
    assert row.kind == InteractionKind.CUSTOM_EVENT
    assert row.payload["name"] == "signup"
