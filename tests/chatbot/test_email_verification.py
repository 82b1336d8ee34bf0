"""A chat visitor proves an email address is theirs with a one-time code mailed to it.

Typing an email never links a chat to the known lead that has it (test_takeover.py); typing the
code sent to that address does, as a signed identity does. The code is stored only as a keyed
hash, bound to its conversation and address, works once, for CHAT_EMAIL_CODE_MINUTES, and for 5
wrong tries at most; asking for codes is limited per conversation, address, IP and site, so nobody
can flood a mailbox or guess their way in; the answer never says whether the address is known.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import smtplib
import time
from datetime import timedelta
from email.header import decode_header, make_header
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from chatbot import api, email_codes, services
from chatbot.models import Conversation, EmailCode, Site
from chatbot.signals import visitor_identified
from chatbot.tasks import purge_empty_chats
from demo.site import install_demo_site
from leadcrm.models import Consent, FollowUp, InteractionKind, Lead
from privacy.services import erase_person
from tests.factories import make_follow_up

pytestmark = pytest.mark.django_db

ORIGIN = "http://127.0.0.1:8000"
ALWAYS_OPEN = {d: [["00:00", "00:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
KIM = "kim@customer.example"
CODE_RE = re.compile(r"\b(\d{6})\b")


@pytest.fixture
def site() -> Site:
    site = install_demo_site()
    site.business_hours = ALWAYS_OPEN
    site.save()
    return site


@pytest.fixture
def known(salesperson) -> Lead:
    """A customer the business knows; no phone and no consent on file yet."""
    return Lead.objects.create(
        email=KIM, first_name="Kim", last_name="Customer", source="web_form", owner=salesperson
    )


@pytest.fixture
def identified_events() -> Any:
    events: list[dict] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        events.append(kwargs)

    visitor_identified.connect(receiver, weak=False, dispatch_uid="test-email-code")
    yield events
    visitor_identified.disconnect(dispatch_uid="test-email-code")


def post(client, site, path: str, data: dict | None = None, token: str = "", ip: str = "192.0.2.1"):
    headers = {"HTTP_X_CHAT_TOKEN": token} if token else {}
    # The test's transaction never commits: run what each request queued for after its commit
    # (the mail task, broadcasts), as production does.
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(
            f"/api/v1/chat/sites/{site.public_key}/{path}",
            json.dumps(data or {}),
            content_type="application/json",
            HTTP_ORIGIN=ORIGIN,
            REMOTE_ADDR=ip,
            **headers,
        )


def start(client, site, ip: str = "192.0.2.1", **data) -> str:
    response = post(client, site, "conversations/", data, ip=ip)
    assert response.status_code == 200
    return response.json()["token"]


def ask_code(client, site, token: str, email: str = KIM, ip: str = "192.0.2.1"):
    return post(client, site, "conversation/email-code/", {"email": email}, token, ip=ip)


def confirm(client, site, token: str, code: str, email: str = KIM, ip: str = "192.0.2.1"):
    return post(
        client, site, "conversation/email-code/confirm/", {"email": email, "code": code}, token, ip=ip
    )


def last_code(to: str = KIM) -> str:
    [message] = [m for m in mail.outbox if m.to == [to]][-1:]
    return CODE_RE.search(message.body).group(1)


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# --- The whole flow ------------------------------------------------------------------------------


def test_the_code_from_the_email_links_the_chat_to_the_known_lead(
    client, site, known, salesperson, identified_events
) -> None:
    token = start(client, site, visitor_id="visitor-kim-0001")
    assert post(client, site, "conversation/messages/", {"text": "Hi, it's me"}, token).status_code == 200
    post(
        client,
        site,
        "conversation/identify/",
        {"name": "Kim C", "email": KIM, "phone": "+1 555 0100", "contact_consent": True},
        token,
    )
    temporary = Conversation.objects.get(token=token).lead
    assert temporary.possible_duplicate_of_id == known.pk  # a claim so far, not a link
    make_follow_up(temporary, note="Chat callback requested")

    asked = ask_code(client, site, token)
    assert asked.status_code == 200
    assert asked.json() == {"detail": email_codes.request_answer(), "expires_in": 600}
    [message] = mail.outbox
    assert message.to == [KIM]
    assert site.name in message.subject
    assert site.name in str(make_header(decode_header(message.from_email)))  # in the business's name
    assert "http" not in message.body  # no link to click: the code is typed in the chat
    code = last_code()

    confirmed = confirm(client, site, token, code)
    assert confirmed.status_code == 200, confirmed.content
    body = confirmed.json()
    assert body["identity_verified"] is True
    assert body["identified"] is True  # may now ask what we know about them
    assert body["messages"][-1]["text"] == "Thanks! Your email address is confirmed."

    conversation = Conversation.objects.get(token=token)
    assert conversation.lead_id == known.pk
    assert conversation.identity_verified
    assert conversation.verified_by == "email_code"
    # The temporary duplicate was merged, not left behind: its chat and follow-up moved over.
    assert not Lead.objects.filter(pk=temporary.pk).exists()
    assert known.interactions.filter(kind=InteractionKind.CHAT_MESSAGE).count() == 1
    assert FollowUp.objects.filter(lead=known, note="Chat callback requested").exists()
    known.refresh_from_db()
    assert (known.email, known.first_name, known.owner_id) == (KIM, "Kim", salesperson.pk)
    assert known.phone == "+1 555 0100"  # typed details fill blanks, as with a signed identity
    assert known.contact_consent  # the consent given in the chat, with its wording
    assert Consent.objects.filter(lead=known, purpose="contact", source="widget").count() == 1
    assert {"lead_id": known.pk, "visitor_id": "visitor-kim-0001"}.items() <= identified_events[-1].items()


def test_verifying_before_writing_puts_the_pages_and_messages_on_the_known_lead(client, site, known) -> None:
    token = start(client, site, page_url="https://rosas.example/cakes/", page_title="Cakes")
    ask_code(client, site, token)
    assert confirm(client, site, token, last_code()).status_code == 200
    post(client, site, "conversation/messages/", {"text": "Where is my order?"}, token)
    assert Conversation.objects.get(token=token).pending == {}
    assert known.interactions.filter(kind=InteractionKind.PAGE_VIEW, payload__title="Cakes").exists()
    assert known.interactions.filter(kind=InteractionKind.CHAT_MESSAGE).count() == 1
    assert Lead.objects.count() == 1  # no lead of its own was made


def test_an_unknown_address_verified_goes_on_the_chats_own_lead(client, site, identified_events) -> None:
    token = start(client, site, visitor_id="visitor-new-00001")
    assert ask_code(client, site, token, "new@customer.example").status_code == 200
    assert (
        confirm(client, site, token, last_code("new@customer.example"), "NEW@customer.example").status_code
        == 200
    )
    conversation = Conversation.objects.get(token=token)
    assert conversation.lead.email == "new@customer.example"
    assert conversation.lead_created
    assert conversation.identity_verified
    assert identified_events[-1]["lead_id"] == conversation.lead_id


def test_a_verified_chat_carries_over_to_the_next_one(client, site, known) -> None:
    token = start(client, site)
    ask_code(client, site, token)
    confirm(client, site, token, last_code())
    post(client, site, "conversation/close/", {}, token)
    again = post(client, site, "conversations/", {}, token).json()
    assert again["identity_verified"] is True
    assert Conversation.objects.get(token=again["token"]).lead_id == known.pk
    assert "Kim" in again["messages"][0]["text"]  # greeted by name, as after a signed identity


def test_the_answer_is_the_same_for_a_known_and_an_unknown_address(client, site, known) -> None:
    answers = []
    for email in (KIM, "nobody@customer.example"):
        response = ask_code(client, site, start(client, site), email)
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
    assert sorted(m.to[0] for m in mail.outbox) == sorted([KIM, "nobody@customer.example"])


# --- The code: wrong, expired, used, another chat's ------------------------------------------------


def test_five_wrong_codes_void_it(client, site, known) -> None:
    token = start(client, site)
    ask_code(client, site, token)
    code = last_code()
    answers = [confirm(client, site, token, other_code(code)) for _ in range(5)]
    assert [a.status_code for a in answers] == [400] * 5
    assert "4 tries left" in answers[0].json()["code"][0]
    assert "1 try left" in answers[3].json()["code"][0]
    assert answers[4].json()["code"] == [email_codes.VOID]
    right = confirm(client, site, token, code)
    assert right.status_code == 400
    assert right.json()["code"] == [email_codes.VOID]
    assert Conversation.objects.get(token=token).lead_id is None


def test_an_expired_code_is_refused(client, site, known, settings) -> None:
    settings.CHAT_EMAIL_CODE_MINUTES = 3
    token = start(client, site)
    ask_code(client, site, token)
    row = EmailCode.objects.get()
    assert row.expires_at - row.created_at == timedelta(minutes=3)
    conversation = Conversation.objects.get(token=token)
    with pytest.raises(ValidationError) as refused:
        email_codes.confirm_code(
            conversation=conversation, email=KIM, code=last_code(), now=timezone.now() + timedelta(minutes=3)
        )
    assert refused.value.message_dict == {"code": [email_codes.EXPIRED]}
    EmailCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert confirm(client, site, token, last_code()).json()["code"] == [email_codes.EXPIRED]
    assert not Conversation.objects.get(token=token).identity_verified


def test_a_code_works_once(client, site, known) -> None:
    token = start(client, site)
    ask_code(client, site, token)
    code = last_code()
    assert confirm(client, site, token, code).status_code == 200
    again = confirm(client, site, token, code)
    assert again.status_code == 400
    assert again.json()["code"] == [email_codes.USED]
    assert Conversation.objects.get(token=token).messages.filter(text__contains="confirmed").count() == 1


def test_a_new_code_replaces_the_old_one(client, site, known) -> None:
    token = start(client, site)
    ask_code(client, site, token)
    first = last_code()
    ask_code(client, site, token)
    second = last_code()
    if first != second:  # one in a million they are equal
        assert confirm(client, site, token, first).status_code == 400
    assert confirm(client, site, token, second).status_code == 200


def test_a_code_of_one_chat_does_not_verify_another(client, site, known) -> None:
    victim = start(client, site, ip="192.0.2.10")
    ask_code(client, site, victim, ip="192.0.2.10")
    stolen = last_code()
    attacker = start(client, site, ip="198.51.100.66")
    without_own = confirm(client, site, attacker, stolen, ip="198.51.100.66")
    assert without_own.json()["code"] == [email_codes.NO_CODE]
    ask_code(client, site, attacker, ip="198.51.100.66")  # the attacker's own code goes to Kim's inbox
    if stolen != last_code():
        assert confirm(client, site, attacker, stolen, ip="198.51.100.66").status_code == 400
    assert Conversation.objects.get(token=attacker).lead_id is None
    assert confirm(client, site, victim, stolen, ip="192.0.2.10").status_code == 200


def test_a_chat_verified_by_signature_asks_for_no_code(client, site, known) -> None:
    token = start(client, site, identity_email=KIM, identity_signature=site.identity_signature(KIM))
    refused = ask_code(client, site, token)
    assert refused.status_code == 400
    assert refused.json()["email"] == [email_codes.ALREADY]
    assert mail.outbox == []


def test_bad_input_and_no_token_are_refused(client, site) -> None:
    token = start(client, site)
    assert ask_code(client, site, token, "not an address").status_code == 400
    assert ask_code(client, site, "", KIM).status_code == 403
    assert confirm(client, site, token, "12ab56").json()["code"] == ["Type the 6 digits from the email."]
    assert confirm(client, site, "", "123456").status_code == 403
    assert mail.outbox == []


# --- Limits ---------------------------------------------------------------------------------------


def test_codes_per_conversation_are_limited(client, site) -> None:
    token = start(client, site)
    codes = [ask_code(client, site, token, f"me{i}@customer.example").status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]  # CHAT_RATE_CODE_CONVERSATION_HOUR: 3/hour
    refused = ask_code(client, site, token, "me9@customer.example")
    assert 3000 < int(refused["Retry-After"]) <= 3600
    assert len(mail.outbox) == 3


def test_codes_per_address_are_limited_across_chats_and_addresses(client, site, known) -> None:
    # Email bombing: every request from a new chat and a new address, all for the same victim.
    codes = [
        ask_code(client, site, start(client, site, ip=f"203.0.113.{i}"), KIM.upper(), ip=f"203.0.113.{i}")
        for i in range(6)
    ]
    assert [c.status_code for c in codes] == [200] * 5 + [429]  # CHAT_RATE_CODE_EMAIL_HOUR: 5/hour
    assert "Retry-After" in codes[-1]
    assert len(mail.outbox) == 5
    other = ask_code(client, site, start(client, site, ip="203.0.113.9"), "else@x.example", ip="203.0.113.9")
    assert other.status_code == 200  # another address is unaffected


def test_codes_per_address_are_limited_per_day_too(client, site, known, monkeypatch) -> None:
    # Bounds a patient guesser: at most 10 codes × 5 tries a day at one address, from any IPs.
    monkeypatch.setattr(api.ChatCodeEmailThrottle, "rate", "100/hour", raising=False)
    codes = [
        ask_code(client, site, start(client, site, ip=f"203.0.113.{i}"), KIM, ip=f"203.0.113.{i}").status_code
        for i in range(11)
    ]
    assert codes == [200] * 10 + [429]  # CHAT_RATE_CODE_EMAIL_DAY: 10/day


def test_codes_per_ip_and_per_site_are_limited(client, site, monkeypatch) -> None:
    monkeypatch.setattr(api.ChatCodeIpThrottle, "rate", "2/hour", raising=False)
    monkeypatch.setattr(api.ChatCodeSiteThrottle, "rate", "3/hour", raising=False)
    same_ip = [ask_code(client, site, start(client, site), f"ip{i}@x.example").status_code for i in range(3)]
    assert same_ip == [200, 200, 429]
    other_ip = ask_code(
        client, site, start(client, site, ip="198.51.100.7"), "a@x.example", ip="198.51.100.7"
    )
    assert other_ip.status_code == 200  # the third of the site's three
    last = ask_code(client, site, start(client, site, ip="198.51.100.8"), "b@x.example", ip="198.51.100.8")
    assert last.status_code == 429  # the site's hour is used up


def test_a_request_refused_by_another_limit_uses_none_of_the_addresss_quota(
    client, site, monkeypatch
) -> None:
    monkeypatch.setattr(api.ChatCodeIpThrottle, "rate", "1/hour", raising=False)
    monkeypatch.setattr(api.ChatCodeEmailThrottle, "rate", "2/hour", raising=False)
    assert ask_code(client, site, start(client, site)).status_code == 200
    for _ in range(5):  # an attacker's address already at its limit cannot lock Kim out
        assert ask_code(client, site, start(client, site)).status_code == 429
    owner = start(client, site, ip="192.0.2.77")
    assert ask_code(client, site, owner, ip="192.0.2.77").status_code == 200


def test_tries_at_a_code_are_limited_per_conversation(client, site, monkeypatch) -> None:
    monkeypatch.setattr(api.ChatCodeConfirmThrottle, "rate", "3/hour", raising=False)
    token = start(client, site)
    ask_code(client, site, token)
    wrong = other_code(last_code())
    assert [confirm(client, site, token, wrong).status_code for _ in range(4)] == [400, 400, 400, 429]


# --- Storage, logs, erasure -----------------------------------------------------------------------


def test_neither_the_code_nor_the_address_is_stored_or_queued_in_plain_text(
    client, site, monkeypatch
) -> None:
    queued: list[tuple] = []
    real_enqueue = email_codes.enqueue_on_commit
    monkeypatch.setattr(
        email_codes, "enqueue_on_commit", lambda name, *args: (queued.append(args), real_enqueue(name, *args))
    )
    token = start(client, site)
    ask_code(client, site, token)
    code = last_code()
    row = EmailCode.objects.filter(conversation__token=token).values().get()
    stored = json.dumps(row, default=str)
    assert code not in stored
    assert KIM not in stored
    assert row["email_hash"] != hashlib.sha256(KIM.encode()).hexdigest()  # keyed: no dictionary lookup
    [args] = queued
    assert code not in repr(args)  # the broker sees an encrypted envelope
    assert KIM not in repr(args)


def test_logs_carry_neither_the_address_nor_the_code(client, site, known, caplog, monkeypatch) -> None:
    caplog.set_level(logging.DEBUG)
    token = start(client, site)
    assert ask_code(client, site, token).status_code == 200
    code = last_code()
    assert confirm(client, site, token, other_code(code)).status_code == 400
    assert confirm(client, site, token, code).status_code == 200

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise smtplib.SMTPRecipientsRefused({"new@customer.example": (550, b"no such user")})

    monkeypatch.setattr(email_codes, "send_mail", refuse)
    other = start(client, site)
    assert ask_code(client, site, other, "new@customer.example").status_code == 200  # same answer
    assert "SMTPRecipientsRefused" in caplog.text
    assert KIM not in caplog.text.lower()
    assert "new@customer.example" not in caplog.text
    assert code not in caplog.text


def test_the_mail_task_sends_nothing_for_a_replaced_or_late_code(client, site, monkeypatch) -> None:
    queued: list[tuple] = []
    monkeypatch.setattr(email_codes, "enqueue_on_commit", lambda name, *args: queued.append(args))
    token = start(client, site)
    ask_code(client, site, token)
    ask_code(client, site, token)
    (first_id, first), (second_id, second) = queued
    assert email_codes.deliver(first_id, first) is False  # replaced by the second code
    assert email_codes.deliver(first_id, second) is False  # an envelope of another code
    real_time = time.time
    monkeypatch.setattr("cryptography.fernet.time.time", lambda: real_time() + 11 * 60)
    assert email_codes.deliver(second_id, second) is False  # older than a code lives
    monkeypatch.undo()
    assert email_codes.deliver(second_id, second) is True
    assert len(mail.outbox) == 1


def test_expired_codes_are_purged_and_erasure_removes_a_persons_codes(client, site, known) -> None:
    old = start(client, site)
    ask_code(client, site, old, "old@x.example")
    EmailCode.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    token = start(client, site)
    ask_code(client, site, token)
    purge_empty_chats()
    assert list(EmailCode.objects.values_list("conversation__token", flat=True)) == [token]

    confirm(client, site, token, last_code())
    assert EmailCode.objects.filter(conversation__token=token).exists()  # used, not yet expired
    erase_person(lead=known, by=None)
    assert not EmailCode.objects.exists()


# --- Staff side and schema ------------------------------------------------------------------------


def test_the_agent_panel_and_inbox_say_how_the_visitor_was_verified(client, site, known, salesperson) -> None:
    token = start(client, site)
    ask_code(client, site, token)
    confirm(client, site, token, last_code())
    client.force_login(salesperson)
    panel = client.get(reverse("chatbot:agent_panel", args=[known.pk])).content.decode()
    assert "verified by email code" in panel
    assert "verified by email code" in client.get(reverse("chatbot:inbox")).content.decode()

    signed = start(client, site, identity_email=KIM, identity_signature=site.identity_signature(KIM))
    post(client, site, "conversation/messages/", {"text": "hello"}, signed)
    panel = client.get(reverse("chatbot:agent_panel", args=[known.pk])).content.decode()
    assert "signed identity" in panel


def test_the_endpoints_are_in_the_schema_with_their_refusals(client, manager) -> None:
    client.force_login(manager)
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    for tail in ("conversation/email-code/", "conversation/email-code/confirm/"):
        [path] = [p for p in schema["paths"] if p.endswith(tail)]
        responses = schema["paths"][path]["post"]["responses"]
        assert {"200", "400", "403", "429"} <= set(responses)
        assert "Retry-After" in responses["429"]["headers"]


def test_services_refuse_a_code_for_a_malformed_address(site) -> None:
    conversation, _ = services.start_conversation(site=site)
    with pytest.raises(ValidationError):
        email_codes.request_code(conversation=conversation, email="kim@")
    assert not EmailCode.objects.exists()
