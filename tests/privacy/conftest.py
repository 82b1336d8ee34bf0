from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.utils import timezone

from chatbot.models import Conversation, Message, Site
from leadcrm import services
from leadcrm.models import Lead
from tests.factories import make_follow_up, make_interaction


@dataclass
class Person:
    lead: Lead
    conversation: Conversation


@pytest.fixture
def site() -> Site:
    return Site.objects.create(name="Rosa's Bakery", allowed_origins=["https://rosa.example"])


@pytest.fixture
def person(site, salesperson) -> Person:
    """A lead with something of every kind held about them."""
    lead = services.create_lead(
        first_name="Grace",
        last_name="Hopper",
        email="grace@example.com",
        phone="+1 555 0100",
        company_name="Hopper Compilers",
        job_title="Rear Admiral",
        city="Arlington",
        industry="Software",
        source="chat",
        custom={"favourite_cake": "lemon"},
        visitor_id="visitor-grace-0001",
        owner=salesperson,
        contact_consent=True,
        consent_source="widget",
        consent_text="You may store my details and contact me.",
        consent_text_version="v2",
    )
    Lead.objects.filter(pk=lead.pk).update(
        score_breakdown=[{"rule": "Pricing page", "points": 15, "reason": "Visited pricing: +15"}],
        ml_factors=[{"feature": "industry", "label": "Industry: Software", "effect": 0.4}],
        rule_score=15,
    )
    lead.refresh_from_db()
    make_interaction(lead, "call", payload={"text": "Grace wants a wedding cake", "duration_s": 300})
    make_interaction(lead, "page_view", payload={"url": "/pricing?email=grace@example.com"})
    make_follow_up(lead, note="Call Grace about the lemon cake", assigned_to=salesperson)
    conversation = Conversation.objects.create(site=site, lead=lead, visitor_id="visitor-grace-0001")
    Message.objects.create(conversation=conversation, sender="visitor", text="Hi, I am Grace Hopper")
    Message.objects.create(conversation=conversation, sender="bot", text="Hello! How can we help?")
    Conversation.objects.filter(pk=conversation.pk).update(last_message_at=timezone.now())
    return Person(lead=lead, conversation=conversation)
