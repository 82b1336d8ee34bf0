"""Agent panel extras: canned replies (merge fields, validation, permissions), internal notes that
never reach the visitor, click-to-call and mailto links in the panel header."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from chatbot import services
from chatbot.models import Message
from demo.site import install_demo_site
from leadcrm import playbook
from leadcrm import realtime as delivery
from leadcrm.models import CannedReply, Interaction, InteractionKind

pytestmark = pytest.mark.django_db

ORIGIN = "http://127.0.0.1:8000"
ALWAYS_OPEN = {d: [["00:00", "00:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def _chat(text: str = "hello there"):
    site = install_demo_site()
    site.business_hours = ALWAYS_OPEN
    site.save()
    conversation, _ = services.start_conversation(
        site=site, visitor_id="visitor-canned-1", page_url=f"{ORIGIN}/"
    )
    services.post_visitor_message(conversation=conversation, text=text)
    conversation.refresh_from_db()
    return conversation


def _add(client, prefix: str, url: str, title: str, text: str, **headers):
    return client.post(url, {f"{prefix}-title": title, f"{prefix}-text": text}, **headers)


def test_manager_saves_a_canned_reply_and_the_panel_offers_it_merged(client, manager, salesperson) -> None:
    client.force_login(manager)
    response = _add(
        client,
        "new",
        reverse("leadcrm:canned_reply_add"),
        "Hello",
        "Hi {first_name} from {company}, {agent_name} here.",
    )
    assert response.status_code == 302
    conversation = _chat()
    lead = conversation.lead
    lead.first_name, lead.company_name = "Ana", '<script>alert("x")</script> Bakes'
    lead.save()
    salesperson.first_name = "Sam"
    salesperson.save()
    client.force_login(salesperson)
    body = client.get(reverse("chatbot:agent_panel", args=[lead.pk])).content.decode()
    assert "data-canned-select" in body
    # merged for this lead and agent, and escaped in the attribute
    assert (
        'data-text="Hi Ana from &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Bakes, Sam here."' in body
    )
    assert "<script>alert" not in body


def test_an_unknown_merge_field_is_a_form_error_in_place(client, manager) -> None:
    client.force_login(manager)
    for headers in ({"HTTP_HX_REQUEST": "true"}, {}):
        response = _add(client, "new", reverse("leadcrm:canned_reply_add"), "Bad", "Hi {name}!", **headers)
        assert response.status_code == 400
        body = response.content.decode()
        assert "Unknown merge field {name}." in body
        assert "Hi {name}!</textarea>" in body  # the typed text is kept
    assert not CannedReply.objects.exists()


def test_salespeople_cannot_manage_canned_replies(client, manager, salesperson) -> None:
    reply = playbook.save_canned_reply(by=manager, reply_id=None, title="Hello", text="Hi {first_name}")
    client.force_login(salesperson)
    assert client.get(reverse("leadcrm:canned_replies")).status_code == 403
    assert _add(client, "new", reverse("leadcrm:canned_reply_add"), "Mine", "x").status_code == 403
    assert (
        _add(client, f"c{reply.pk}", reverse("leadcrm:canned_reply", args=[reply.pk]), "Hi", "y").status_code
        == 403
    )
    assert client.post(reverse("leadcrm:canned_reply_delete", args=[reply.pk])).status_code == 403
    reply.refresh_from_db()
    assert (reply.title, reply.text) == ("Hello", "Hi {first_name}")


def test_internal_notes_stay_with_the_team(
    client, salesperson, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    conversation = _chat()
    sent: list[tuple[tuple[str, ...], tuple[dict, ...]]] = []
    monkeypatch.setattr(delivery, "send_now", lambda groups, *events: sent.append((tuple(groups), events)))
    client.force_login(salesperson)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("chatbot:add_note", args=[conversation.pk]),
            {"note": "Secret: she is price sensitive"},
            HTTP_HX_REQUEST="true",
        )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'class="msg msg-note"' in body
    assert "Secret: she is price sensitive" in body

    # stored as a note on the lead (the CRM service), never as a chat message
    note = Interaction.objects.get(lead=conversation.lead, kind=InteractionKind.NOTE)
    assert note.payload == {
        "text": "Secret: she is price sensitive",
        "conversation_id": conversation.pk,
        "internal": True,
    }
    assert note.logged_by == salesperson
    assert not Message.objects.filter(text__contains="Secret").exists()

    # nothing went out over the websocket groups
    assert not any("Secret" in json.dumps(events) for _, events in sent)

    # and the widget's HTTP messages API does not show it
    widget = client.get(
        f"/api/v1/chat/sites/{conversation.site.public_key}/conversation/messages/",
        HTTP_ORIGIN=ORIGIN,
        HTTP_X_CHAT_TOKEN=conversation.token,
    )
    assert widget.status_code == 200
    assert "Secret" not in widget.content.decode()

    # the staff catch-up JSON (message ids for the websocket resync) has no note either
    staff = client.get(reverse("chatbot:agent_messages", args=[conversation.pk]))
    assert "Secret" not in staff.content.decode()


def test_an_empty_note_is_an_error_in_place(client, salesperson) -> None:
    conversation = _chat()
    client.force_login(salesperson)
    response = client.post(
        reverse("chatbot:add_note", args=[conversation.pk]), {"note": "  "}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400
    assert "Write the note first." in response.content.decode()
    assert not Interaction.objects.filter(kind=InteractionKind.NOTE).exists()


def test_notes_on_someone_elses_lead_are_refused(client, salesperson, other_salesperson) -> None:
    conversation = _chat()
    lead = conversation.lead
    lead.owner = other_salesperson
    lead.save()
    client.force_login(salesperson)
    response = client.post(reverse("chatbot:add_note", args=[conversation.pk]), {"note": "x"})
    assert response.status_code == 404
    assert not Interaction.objects.filter(kind=InteractionKind.NOTE).exists()


def test_panel_header_has_call_and_mail_links(client, salesperson) -> None:
    conversation = _chat()
    lead = conversation.lead
    lead.phone, lead.email = "+49 30 1234", "ana@example.com"
    lead.save()
    client.force_login(salesperson)
    body = client.get(reverse("chatbot:agent_panel", args=[lead.pk])).content.decode()
    assert 'href="tel:+49%2030%201234"' in body
    assert 'href="mailto:ana@example.com"' in body
    lead.phone, lead.email = "", None
    lead.save()
    body = client.get(reverse("chatbot:agent_panel", args=[lead.pk])).content.decode()
    assert "tel:" not in body
    assert "mailto:" not in body


def test_anonymous_users_cannot_post_notes(client) -> None:
    conversation = _chat()
    response = client.post(reverse("chatbot:add_note", args=[conversation.pk]), {"note": "x"})
    assert response.status_code == 302
