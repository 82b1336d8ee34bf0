"""Issue 14, hole 1: a typed email never takes over, changes or reveals a known customer's lead.

The widget's "identify" step used to merge the chat into whichever lead owned a typed email: it
overwrote that lead's phone, set its consent, re-tied its visitor id to the typist, and the next
visit greeted the typist by the customer's name. Only a valid identity signature links a chat to
a known lead; a visitor id alone never links to a lead that has an identity.
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from chatbot import services
from chatbot.models import Conversation
from demo.site import install_demo_site
from leadcrm.models import Consent, InteractionKind, Lead
from tests.factories import make_user

pytestmark = pytest.mark.django_db

ORIGIN = "http://127.0.0.1:8000"
ALWAYS_OPEN = {d: [["00:00", "00:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
VICTIM_VISITOR = "victim-visitor-0001"


@pytest.fixture
def site():
    site = install_demo_site()
    site.business_hours = ALWAYS_OPEN
    site.save()
    return site


@pytest.fixture
def victim(salesperson) -> Lead:
    return Lead.objects.create(
        email="kim@customer.example",
        first_name="Kim",
        last_name="Customer",
        phone="+49 30 111111",
        source="web_form",
        owner=salesperson,
        visitor_id=VICTIM_VISITOR,
        contact_consent=True,
    )


def _post(client, site, path: str, data: dict, token: str = ""):
    headers = {"HTTP_X_CHAT_TOKEN": token} if token else {}
    return client.post(
        f"/api/v1/chat/sites/{site.public_key}/{path}",
        json.dumps(data),
        content_type="application/json",
        HTTP_ORIGIN=ORIGIN,
        **headers,
    )


def _snapshot(lead: Lead) -> dict:
    lead.refresh_from_db()
    fields = ("email", "first_name", "last_name", "phone", "owner_id", "visitor_id", "custom")
    consent = ("contact_consent", "contact_consent_at", "marketing_consent", "marketing_consent_at")
    return {f: getattr(lead, f) for f in fields + consent} | {
        "consents": Consent.objects.filter(lead=lead).count(),
        "chat_messages": lead.interactions.filter(kind=InteractionKind.CHAT_MESSAGE).count(),
    }


def test_typing_a_customers_email_changes_nothing_of_their_lead(client, site, victim) -> None:
    before = _snapshot(victim)
    # The attacker even uses the victim's visitor id (it is chosen by the browser).
    token = _post(client, site, "conversations/", {"visitor_id": VICTIM_VISITOR}).json()["token"]
    _post(client, site, "conversation/messages/", {"text": "Hi there"}, token)
    response = _post(
        client,
        site,
        "conversation/identify/",
        {
            "name": "Mallory Evil",
            "email": "KIM@customer.example",
            "phone": "+1 555 0000",
            "contact_consent": True,
            "marketing_consent": True,
        },
        token,
    )
    assert response.status_code == 200
    assert _snapshot(victim) == before  # phone, consent, visitor id, owner: all unchanged

    conversation = Conversation.objects.get(token=token)
    duplicate = conversation.lead
    assert duplicate.pk != victim.pk
    assert duplicate.possible_duplicate_of_id == victim.pk  # for a salesperson to check by hand
    assert duplicate.email is None
    assert duplicate.custom[services.TYPED_EMAIL_KEY] == "kim@customer.example"
    assert (duplicate.first_name, duplicate.phone) == ("Mallory", "+1 555 0000")
    assert set(duplicate.consents.values_list("purpose", flat=True)) == {"contact", "marketing"}
    assert duplicate.interactions.filter(kind=InteractionKind.CHAT_MESSAGE).count() == 1
    assert response.json()["identified"] is False  # a claimed email unlocks no privacy download


def test_the_answer_is_the_same_for_a_known_and_an_unknown_email(client, site, victim) -> None:
    answers = []
    for email in ("kim@customer.example", "nobody@customer.example"):
        token = _post(client, site, "conversations/", {}).json()["token"]
        body = _post(
            client, site, "conversation/identify/", {"email": email, "contact_consent": True}, token
        ).json()
        answers.append([(m["from"], m["text"], m["actions"]) for m in body["messages"]])
    assert answers[0] == answers[1]


def test_the_next_visit_does_not_greet_the_typist_by_the_customers_name(client, site, victim) -> None:
    token = _post(client, site, "conversations/", {"visitor_id": VICTIM_VISITOR}).json()["token"]
    _post(client, site, "conversation/identify/", {"email": victim.email, "contact_consent": True}, token)
    _post(client, site, "conversation/close/", {}, token)
    with_token = _post(client, site, "conversations/", {"visitor_id": VICTIM_VISITOR}, token).json()
    without = _post(client, site, "conversations/", {"visitor_id": VICTIM_VISITOR}).json()
    for visit in (with_token, without):
        assert "Kim" not in visit["messages"][0]["text"]


def test_a_visitor_id_alone_never_links_to_a_lead_with_an_identity(client, site, victim) -> None:
    token = _post(client, site, "conversations/", {"visitor_id": VICTIM_VISITOR}).json()["token"]
    assert Conversation.objects.get(token=token).lead is None
    _post(client, site, "conversation/messages/", {"text": "hello"}, token)
    lead = Conversation.objects.get(token=token).lead
    assert lead is not None
    assert lead.pk != victim.pk
    assert victim.interactions.filter(kind=InteractionKind.CHAT_MESSAGE).count() == 0


def test_only_a_valid_signature_links_the_chat_to_the_known_lead(client, site, victim) -> None:
    forged = _post(
        client,
        site,
        "conversations/",
        {"identity_email": victim.email, "identity_signature": "ab" * 32, "identity_name": "Kim"},
    ).json()
    assert forged["identity_verified"] is False
    assert Conversation.objects.get(token=forged["token"]).lead is None
    signed = _post(
        client,
        site,
        "conversations/",
        {"identity_email": victim.email, "identity_signature": site.identity_signature(victim.email)},
    ).json()
    assert signed["identity_verified"] is True
    assert Conversation.objects.get(token=signed["token"]).lead_id == victim.pk
    assert ", Kim" in signed["messages"][0]["text"]


def test_salespeople_see_the_mark_and_merge_by_hand(client, site, victim, salesperson) -> None:
    token = _post(client, site, "conversations/", {}).json()["token"]
    _post(client, site, "conversation/messages/", {"text": "It's me, Kim"}, token)
    _post(client, site, "conversation/identify/", {"email": victim.email, "contact_consent": True}, token)
    duplicate = Conversation.objects.get(token=token).lead
    client.force_login(salesperson)
    panel = client.get(reverse("chatbot:agent_panel", args=[duplicate.pk])).content.decode()
    assert "Possible duplicate" in panel
    assert "kim@customer.example" in panel
    assert reverse("chatbot:merge_duplicate", args=[duplicate.pk]) in panel

    outsider = make_user("outsider")
    client.force_login(outsider)  # may not change the victim's lead (owned by someone else)
    assert client.post(reverse("chatbot:merge_duplicate", args=[duplicate.pk])).status_code in (403, 404)
    assert Lead.objects.filter(pk=duplicate.pk).exists()

    client.force_login(salesperson)
    assert client.post(reverse("chatbot:merge_duplicate", args=[duplicate.pk])).status_code == 200
    assert not Lead.objects.filter(pk=duplicate.pk).exists()
    assert Conversation.objects.get(token=token).lead_id == victim.pk
    assert victim.interactions.filter(kind=InteractionKind.CHAT_MESSAGE).count() == 1
    victim.refresh_from_db()
    assert victim.phone == "+49 30 111111"


def test_a_chat_linked_the_old_way_gets_a_lead_of_its_own_on_identify(client, site, victim) -> None:
    # A conversation left from before the fix, tied to the customer's lead by visitor id alone.
    legacy = Conversation.objects.create(site=site, lead=victim, visitor_id=VICTIM_VISITOR)
    before = _snapshot(victim)
    response = _post(
        client,
        site,
        "conversation/identify/",
        {"name": "Mallory", "phone": "+1 555 0000", "contact_consent": True},
        legacy.token,
    )
    assert response.status_code == 200
    assert _snapshot(victim) == before
    legacy.refresh_from_db()
    assert legacy.lead_id != victim.pk
    assert legacy.lead.phone == "+1 555 0000"
