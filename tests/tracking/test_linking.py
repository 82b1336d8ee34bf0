"""A visitor's anonymous history joins the lead only when the server itself knows who they are."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chatbot import services as chat
from leadcrm.models import Interaction, InteractionKind, Lead
from leadcrm.services import create_lead
from tests.factories import make_lead
from tests.tracking.conftest import ORIGIN, page_view, send, visitor
from tracking import services
from tracking.models import TrackedEvent, VisitorLink

pytestmark = pytest.mark.django_db(transaction=True)  # the move runs after the chat's commit


def _browse(client, site, vid: str, n: int = 3) -> list[dict]:
    views = [page_view(url=f"https://shop.example/page{i}") for i in range(n)]
    response = send(client, site, {"visitor_id": vid, "consent": True, "events": views})
    assert response.json() == {"stored": n, "duplicates": 0}
    return views


def _timeline(lead_id: int) -> list[str]:
    return sorted(
        Interaction.objects.filter(lead_id=lead_id, kind=InteractionKind.PAGE_VIEW)
        .exclude(client_event_id="")
        .values_list("payload__url", flat=True)
    )


def test_a_chat_that_gets_its_lead_links_the_visitors_earlier_page_views(client, site) -> None:
    vid = visitor(site)
    pv = _browse(client, site, vid)[0]
    send(
        client,
        site,
        {
            "visitor_id": vid,
            "consent": True,
            "events": [{"id": "time0001", "type": "time_on_page", "page_id": pv["id"], "seconds": 37}],
        },
    )
    conversation, _ = chat.start_conversation(site=site, visitor_id=vid)
    assert conversation.lead_id is None  # opening the chat is not enough
    assert TrackedEvent.objects.count() == 4
    chat.post_visitor_message(conversation=conversation, text="Do you deliver?")
    conversation.refresh_from_db()
    lead_id = conversation.lead_id
    assert lead_id is not None
    assert _timeline(lead_id) == [f"https://shop.example/page{i}" for i in range(3)]
    moved = Interaction.objects.get(lead_id=lead_id, client_event_id="trk_" + pv["id"])
    assert moved.payload["seconds"] == 37
    assert moved.payload["title"] == "Pricing"
    assert TrackedEvent.objects.count() == 0
    assert VisitorLink.objects.get().lead_id == lead_id
    # Later events of the linked visitor go straight onto the timeline.
    send(
        client,
        site,
        {"visitor_id": vid, "consent": True, "events": [page_view(url="https://shop.example/after")]},
    )
    assert "https://shop.example/after" in _timeline(lead_id)
    assert TrackedEvent.objects.count() == 0


def test_the_widget_token_held_by_the_same_browser_links_the_visitor(client, site) -> None:
    vid = visitor(site)
    _browse(client, site, vid)
    conversation, _ = chat.start_conversation(
        site=site, visitor_id="widget-own-id-123"
    )  # the widget's own id
    chat.post_visitor_message(conversation=conversation, text="Hello")
    conversation.refresh_from_db()
    assert not VisitorLink.objects.exists()  # that id is not one the tracking issued
    body = {"visitor_id": vid, "consent": True, "chat_token": conversation.token, "events": [page_view()]}
    assert send(client, site, body).json() == {"stored": 1, "duplicates": 0}
    assert len(_timeline(conversation.lead_id)) == 4
    assert TrackedEvent.objects.count() == 0


def test_a_signed_identity_links_the_visitor_to_that_email_and_a_wrong_one_links_nothing(
    client, site
) -> None:
    vid = visitor(site)
    _browse(client, site, vid)
    url = f"/api/v1/track/sites/{site.public_key}/identify"
    known = make_lead(email="ada@example.com")
    wrong = client.post(
        url,
        {"visitor_id": vid, "email": "ada@example.com", "signature": "0" * 64},
        content_type="application/json",
        HTTP_ORIGIN=ORIGIN,
    )
    assert wrong.status_code == 403
    assert _timeline(known.pk) == []
    assert TrackedEvent.objects.count() == 3
    made_up = client.post(
        url,
        {
            "visitor_id": "visitor-made-up-1",
            "email": "ada@example.com",
            "signature": site.identity_signature("ada@example.com"),
        },
        content_type="application/json",
        HTTP_ORIGIN=ORIGIN,
    )
    assert made_up.status_code == 403
    ok = client.post(
        url,
        {
            "visitor_id": vid,
            "email": "ADA@example.com",
            "signature": site.identity_signature("ada@example.com"),
        },
        content_type="application/json",
        HTTP_ORIGIN=ORIGIN,
    )
    assert ok.json() == {"identified": True}
    assert len(_timeline(known.pk)) == 3


def test_a_new_signed_email_gets_a_lead_of_its_own(client, site) -> None:
    vid = visitor(site)
    _browse(client, site, vid, n=2)
    services.identify_signed(
        site=site,
        visitor_id=vid,
        email="new@example.com",
        signature=site.identity_signature("new@example.com"),
    )
    lead = Lead.objects.get(email="new@example.com")
    assert len(_timeline(lead.pk)) == 2


def test_a_client_chosen_visitor_id_alone_links_nothing(client, site) -> None:
    vid = visitor(site)
    _browse(client, site, vid)
    # A lead that carries this visitor id (e.g. typed into some form) is no proof of anything.
    victim = create_lead(email="victim@example.com", visitor_id=vid)
    send(client, site, {"visitor_id": vid, "consent": True, "events": [page_view()]})
    assert _timeline(victim.pk) == []
    assert TrackedEvent.objects.count() == 4
    # A made-up conversation token links nothing either.
    send(client, site, {"visitor_id": vid, "consent": True, "chat_token": "x" * 32, "events": [page_view()]})
    assert not VisitorLink.objects.exists()
    # Nor the token of a chat whose lead this visitor has no right to (linked by an agent merge).
    conversation, _ = chat.start_conversation(site=site, visitor_id="someone-else-01")
    chat.post_visitor_message(conversation=conversation, text="Hi")
    type(conversation).objects.filter(pk=conversation.pk).update(lead=victim, lead_created=False)
    services.clear_caches()
    send(
        client,
        site,
        {"visitor_id": vid, "consent": True, "chat_token": conversation.token, "events": [page_view()]},
    )
    assert not VisitorLink.objects.exists()
    assert _timeline(victim.pk) == []


def test_a_signal_with_an_id_the_server_did_not_issue_links_nothing(site) -> None:
    lead = make_lead()
    assert not services.link_visitor(
        site_id=site.pk, visitor_id="visitor-test-0001", lead_id=lead.pk, via="chat"
    )
    assert not VisitorLink.objects.exists()


def test_the_sweep_moves_events_that_raced_the_link_and_drops_old_anonymous_ones(
    client, site, settings
) -> None:
    vid = visitor(site)
    lead = make_lead()
    services.link_visitor(site_id=site.pk, visitor_id=vid, lead_id=lead.pk, via="chat")
    # An event stored in the anonymous table after the link (another process's stale cache).
    services._links[(site.pk, vid)] = (1e18, None)
    _browse(client, site, vid, n=2)
    assert TrackedEvent.objects.count() == 2
    old = send(client, site, {"events": [page_view()]})
    assert old.status_code == 200
    TrackedEvent.objects.filter(visitor_id="").update(received_at=timezone.now() - timedelta(days=31))
    settings.TRACKING_ANONYMOUS_DAYS = 30
    moved, deleted = services.sweep()
    assert (moved, deleted) == (2, 1)
    assert len(_timeline(lead.pk)) == 2
    assert TrackedEvent.objects.count() == 0


def test_pages_the_chat_widget_recorded_are_not_counted_twice(client, site) -> None:
    vid = visitor(site)
    views = [page_view(url=f"https://shop.example/page{i}") for i in range(2)]
    send(client, site, {"visitor_id": vid, "consent": True, "events": views})
    # The widget's trail names page0 (with its query string): it lands when the chat makes the lead.
    conversation, _ = chat.start_conversation(
        site=site, visitor_id="widget-own-id-123", page_url="https://shop.example/page0?x=1"
    )
    chat.post_visitor_message(conversation=conversation, text="Hello")
    conversation.refresh_from_db()
    send(
        client,
        site,
        {
            "visitor_id": vid,
            "consent": True,
            "chat_token": conversation.token,
            "events": [
                {"id": "custom001", "type": "custom", "url": "https://shop.example/", "name": "signup"}
            ],
        },
    )
    urls = sorted(
        u.split("?")[0]
        for u in Interaction.objects.filter(
            lead_id=conversation.lead_id, kind=InteractionKind.PAGE_VIEW
        ).values_list("payload__url", flat=True)
    )
    assert urls == ["https://shop.example/page0", "https://shop.example/page1"]
    # While the widget (on the page, with an open chat) records page views, the snippet's are skipped.
    body = {
        "visitor_id": vid,
        "consent": True,
        "chat_token": conversation.token,
        "chat_widget": True,
        "events": [page_view(url="https://shop.example/page2")],
    }
    assert send(client, site, body).json() == {"stored": 1, "duplicates": 0}
    assert not Interaction.objects.filter(payload__url="https://shop.example/page2").exists()
    body["chat_widget"] = False  # a page without the widget: the snippet's page view counts
    body["events"] = [page_view(url="https://shop.example/page3")]
    send(client, site, body)
    assert Interaction.objects.filter(payload__url="https://shop.example/page3").count() == 1
