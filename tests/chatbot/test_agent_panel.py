from __future__ import annotations

import pytest
from django.urls import reverse

from chatbot import services
from demo.site import install_demo_site
from tests.factories import make_user

pytestmark = pytest.mark.django_db

ORIGIN = "http://127.0.0.1:8000"


def _chat(text: str = "hello there"):
    site = install_demo_site()
    conversation, _ = services.start_conversation(
        site=site, visitor_id="visitor-panel-1", page_url=f"{ORIGIN}/cakes/"
    )
    services.post_visitor_message(conversation=conversation, text=text)
    conversation.refresh_from_db()  # the first message made its lead
    return conversation


def test_salesperson_sees_unassigned_chat_and_text_is_escaped(client, salesperson) -> None:
    conversation = _chat("<img src=x onerror=alert(1)>")
    client.force_login(salesperson)
    response = client.get(reverse("chatbot:agent_panel", args=[conversation.lead_id]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "<img src=x" not in body
    assert "Take over" in body


def test_other_salespersons_lead_answers_404(client, salesperson, other_salesperson) -> None:
    conversation = _chat()
    lead = conversation.lead
    lead.owner = other_salesperson
    lead.save()
    client.force_login(salesperson)
    assert client.get(reverse("chatbot:agent_panel", args=[lead.pk])).status_code == 404


def test_panel_needs_login(client) -> None:
    conversation = _chat()
    response = client.get(reverse("chatbot:agent_panel", args=[conversation.lead_id]))
    assert response.status_code == 302


def test_take_over_and_reply_reaches_transcript(client, salesperson) -> None:
    conversation = _chat()
    client.force_login(salesperson)
    assert client.post(reverse("chatbot:take_over", args=[conversation.pk])).status_code == 200
    response = client.post(reverse("chatbot:agent_reply", args=[conversation.pk]), {"text": "Hi, I'm Sam"})
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.status == "human"
    assert conversation.agent == salesperson
    assert conversation.lead.owner == salesperson  # claimed on take-over
    assert conversation.messages.filter(sender="agent", text="Hi, I'm Sam").exists()
    assert conversation.lead.interactions.filter(kind=13, payload__from="agent").exists()


def test_empty_reply_is_a_form_error(client, salesperson) -> None:
    conversation = _chat()
    client.force_login(salesperson)
    response = client.post(reverse("chatbot:agent_reply", args=[conversation.pk]), {"text": "  "})
    assert response.status_code == 400
    assert "Write a reply first" in response.content.decode()


def test_manager_sees_reports(client, manager) -> None:
    _chat("do you sell spaceships")
    client.force_login(manager)
    response = client.get(reverse("chatbot:reports"))
    assert response.status_code == 200
    assert "do you sell spaceships" in response.content.decode()


def test_salesperson_cannot_see_reports(client) -> None:
    client.force_login(make_user("s2"))
    assert (
        client.get(reverse("chatbot:reports")).status_code == 403
    )  # @manager_required: one rule for every manager page
