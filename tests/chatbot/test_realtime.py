"""Broadcasts: the groups they reach, one event per group, and only after the transaction commits."""

from __future__ import annotations

import pytest
from django.db import transaction

from chatbot import realtime
from chatbot.models import Conversation, Message, Sender, Site
from leadcrm import realtime as delivery
from tests.factories import make_lead, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch) -> list[tuple[tuple[str, ...], tuple[dict, ...]]]:
    calls: list[tuple[tuple[str, ...], tuple[dict, ...]]] = []
    monkeypatch.setattr(delivery, "send_now", lambda groups, *events: calls.append((tuple(groups), events)))
    return calls


@pytest.fixture
def conversation() -> Conversation:
    site = Site.objects.create(name="Bakery")
    return Conversation.objects.create(site=site, lead=make_lead(), visitor_id="visitor-rt-0001")


def test_a_visitor_message_and_the_reply_travel_as_one_event_per_group(
    conversation, sent, django_capture_on_commit_callbacks
) -> None:
    messages = [
        Message.objects.create(conversation=conversation, sender=Sender.VISITOR, text="hi"),
        Message.objects.create(conversation=conversation, sender=Sender.BOT, text="Hello!"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        realtime.broadcast_messages(conversation, messages)
        assert sent == []  # nothing leaves before the commit

    [(groups, (event,))] = sent
    assert groups == (f"chat.conv.{conversation.pk}", f"chat.lead.{conversation.lead_id}")
    assert event["type"] == "chat.messages"
    assert [m["text"] for m in event["messages"]] == ["hi", "Hello!"]


def test_status_reaches_the_inbox_too_with_the_agents_name(
    conversation, sent, django_capture_on_commit_callbacks
) -> None:
    conversation.agent = make_user("sam", first_name="Sam")
    conversation.status = "human"
    with django_capture_on_commit_callbacks(execute=True):
        realtime.broadcast_status(conversation, event="taken_over")

    [(groups, (event,))] = sent
    assert realtime.INBOX_GROUP in groups
    assert event | {"conversation": 0} == {
        "type": "chat.status",
        "conversation": 0,
        "status": "human",
        "agent": "Sam",
        "event": "taken_over",
    }


def test_nothing_is_sent_for_a_rolled_back_transaction(
    conversation, sent, django_capture_on_commit_callbacks
) -> None:
    def close_then_fail() -> None:
        with transaction.atomic():
            realtime.broadcast_status(conversation, event="closed")
            raise RuntimeError("rolled back")

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        close_then_fail()
    assert callbacks == []
    assert sent == []


def test_agent_messages_carry_the_agents_name(conversation) -> None:
    sam = make_user("sam", first_name="Sam")
    message = Message.objects.create(conversation=conversation, sender=Sender.AGENT, text="Hi", agent=sam)
    assert realtime.message_json(message) | {"id": 0, "at": ""} == {
        "id": 0,
        "from": "agent",
        "text": "Hi",
        "at": "",
        "actions": [],
        "agent": "Sam",
        "faq": None,
        "helpful": None,
        "client_id": "",
    }
