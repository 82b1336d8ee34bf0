"""The chat's side of the privacy app: a lead's transcripts for the export, and their erasure."""

from __future__ import annotations

import json

import pytest

from chatbot import services
from chatbot.models import Conversation, Message
from demo.site import install_demo_site

pytestmark = pytest.mark.django_db


def _chat(visitor: str, text: str) -> Conversation:
    conversation, _ = services.start_conversation(
        site=install_demo_site(), visitor_id=visitor, page_url="https://shop.example/cakes"
    )
    services.post_visitor_message(conversation=conversation, text=text)
    conversation.refresh_from_db()
    return conversation


def test_transcripts_for_a_lead_are_json_with_every_message_in_order() -> None:
    conversation = _chat("visitor-export-01", "Do you deliver?")
    transcripts = services.transcripts_for(conversation.lead_id)
    json.dumps(transcripts)  # JSON-able as is
    [one] = transcripts
    assert one["started_at"] == conversation.started_at.isoformat()
    assert one["ended_at"] is None
    senders = [m["from"] for m in one["messages"]]
    assert senders[0] == "bot"
    assert "visitor" in senders
    assert "Do you deliver?" in [m["text"] for m in one["messages"]]
    assert services.transcripts_for(conversation.lead_id + 1000) == []


def test_erase_transcripts_removes_messages_pages_and_visitor_ids_of_those_leads_only() -> None:
    erased = _chat("visitor-erase-01", "My address is Hauptstr. 1")
    kept = _chat("visitor-erase-02", "Hello")
    count = Message.objects.filter(conversation=erased).count()

    assert services.erase_transcripts(lead_ids=[erased.lead_id]) == count

    erased.refresh_from_db()
    assert not Message.objects.filter(conversation=erased).exists()
    assert (erased.current_url, erased.current_title, erased.visitor_id) == ("", "", "")
    assert erased.status == "closed"
    assert Message.objects.filter(conversation=kept).exists()
    assert Conversation.objects.get(pk=kept.pk).visitor_id == "visitor-erase-02"
    assert services.erase_transcripts(lead_ids=[]) == 0
