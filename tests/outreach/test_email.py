from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail, signing
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from leadcrm import services as crm
from leadcrm.models import Interaction, InteractionKind
from outreach import services, tokens
from outreach.models import EmailStatus, OutboundEmail
from tests.factories import make_lead, make_user

pytestmark = pytest.mark.django_db

SECRET = "inbound-secret-for-tests"


@pytest.fixture(autouse=True)
def _clean_cache() -> None:
    cache.clear()  # per-IP and per-click counters of another test


def send(
    lead, user, text="Hi Ada,\nour prices: https://shop.example/pricing?plan=pro.\nBest", **kw
) -> OutboundEmail:
    email = services.send_email(lead=lead, by=user, subject=kw.get("subject", "Your quote"), text=text)
    services.deliver(email.pk)  # what the task does after commit
    email.refresh_from_db()
    return email


def links(body: str) -> list[str]:
    """The links in a message, as a mail client finds them (a full stop after one is not part of it)."""
    return [u.rstrip(".,") for u in re.findall(r"https?://[^\s\"<>]+", body)]


def path_of(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


# --- Sending ---------------------------------------------------------------------------------------


def test_a_salesperson_emails_their_lead_and_it_is_on_the_timeline() -> None:
    user = make_user(first_name="Sam", last_name="Seller", email="sam@shop.example")
    lead = make_lead(owner=user, marketing_consent=True)

    email = send(lead, user)

    assert email.status == EmailStatus.SENT
    assert email.tracked
    [message] = mail.outbox
    assert message.to == [lead.email]
    assert message.subject == "Your quote"
    assert "Sam Seller via LeadCRM" in message.from_email
    assert re.fullmatch(r"<lc\.\d+\.[\w-]+@[\w.-]+>", message.extra_headers["Message-ID"])
    html = message.alternatives[0][0]
    assert "/e/o/" in html
    assert html.count("<img") == 1
    assert "https://shop.example/pricing" not in message.body  # the link goes through /e/c/
    sent = Interaction.objects.get(pk=email.interaction_id)
    assert sent.kind == InteractionKind.EMAIL_SENT  # its own kind, not a note
    assert sent.channel == "email"
    assert sent.logged_by == user
    assert sent.payload["subject"] == "Your quote"
    assert sent.payload["outcome"] == "email"
    assert sent.payload["direction"] == "out"


def test_without_marketing_consent_there_is_no_pixel_and_links_are_left_alone() -> None:
    user = make_user()
    lead = make_lead(owner=user, marketing_consent=False)

    email = send(lead, user)

    assert not email.tracked
    [message] = mail.outbox
    assert "/e/o/" not in message.alternatives[0][0]
    assert "<img" not in message.alternatives[0][0]
    assert "https://shop.example/pricing?plan=pro." in message.body
    assert "/e/c/" not in message.body


def test_only_someone_who_may_change_the_lead_can_email_it(client) -> None:
    owner, other = make_user(), make_user()
    lead = make_lead(owner=owner)
    with pytest.raises(PermissionDenied):
        services.send_email(lead=lead, by=other, subject="Hi", text="Hello")
    client.force_login(other)
    assert (
        client.post(reverse("outreach:compose", args=[lead.pk]), {"subject": "x", "text": "y"}).status_code
        == 404
    )
    assert not OutboundEmail.objects.exists()
    assert not mail.outbox


def test_the_compose_page_sends_and_refuses_bad_input_with_a_message(
    client, django_capture_on_commit_callbacks
) -> None:
    user = make_user()
    lead = make_lead(owner=user)
    client.force_login(user)
    url = reverse("outreach:compose", args=[lead.pk])
    bad = client.post(url, {"subject": "", "text": "Hello"})
    assert bad.status_code == 400
    assert b"This field is required" in bad.content
    with django_capture_on_commit_callbacks(execute=True):
        ok = client.post(url, {"subject": "Hello", "text": "Body"})
    assert ok.status_code == 200
    assert b"Email queued" in ok.content
    assert len(mail.outbox) == 1
    assert OutboundEmail.objects.get().status == EmailStatus.SENT
    panel = client.get(reverse("leadcrm:lead", args=[lead.pk]))
    assert url.encode() in panel.content  # the "Send email" button


def test_a_lead_without_email_cannot_be_emailed() -> None:
    user = make_user()
    lead = make_lead(owner=user, email=None)
    with pytest.raises(ValidationError):
        services.send_email(lead=lead, by=user, subject="Hi", text="Hello")


# --- Open pixel and click links --------------------------------------------------------------------


def test_the_pixel_records_an_open_once_per_minute(client) -> None:
    user = make_user()
    lead = make_lead(owner=user, marketing_consent=True)
    email = send(lead, user)
    pixel = path_of(next(u for u in links(mail.outbox[0].alternatives[0][0]) if "/e/o/" in u))

    for _ in range(3):
        answer = client.get(pixel)
        assert answer.status_code == 200
        assert answer["Content-Type"] == "image/gif"
    assert Interaction.objects.filter(lead=lead, kind=InteractionKind.EMAIL_OPEN).count() == 1

    later = timezone.now() + timedelta(seconds=61)
    assert services.record_open(tokens.open_token(email.pk), now=later)
    assert Interaction.objects.filter(lead=lead, kind=InteractionKind.EMAIL_OPEN).count() == 2


def test_a_click_redirects_to_the_signed_target_and_is_recorded(client) -> None:
    user = make_user()
    lead = make_lead(owner=user, marketing_consent=True)
    send(lead, user)
    link = path_of(next(u for u in links(mail.outbox[0].body) if "/e/c/" in u))

    answer = client.get(link)

    assert answer.status_code == 302
    assert answer["Location"] == "https://shop.example/pricing?plan=pro"
    click = Interaction.objects.get(lead=lead, kind=InteractionKind.EMAIL_CLICK)
    assert click.payload["url"] == "https://shop.example/pricing?plan=pro"


@pytest.mark.parametrize(
    "token",
    [
        "aHR0cHM6Ly9ldmlsLmV4YW1wbGUv",  # not signed at all (base64 of a URL)
        "eyJ1IjoiaHR0cHM6Ly9ldmlsLmV4YW1wbGUvIn0:1xXliL:AAAA",  # signature-shaped, not ours
        signing.dumps([1, "https://evil.example/"], salt="another.salt"),  # signed for something else
        signing.dumps([1, "https://evil.example/"], salt=tokens.CLICK_SALT, key="not-our-secret"),
        signing.dumps([1, "javascript:alert(1)"], salt=tokens.CLICK_SALT),  # signed, but not a web URL
    ],
    # Stable ids: signed tokens carry a timestamp, and pytest-xdist's workers must collect the same.
    ids=["unsigned", "not-ours", "other-salt", "other-key", "not-a-web-url"],
)
def test_tampered_or_made_up_click_links_never_redirect(client, token: str) -> None:
    answer = client.get(reverse("outreach:click", args=[token]))
    assert answer.status_code == 400
    assert "Location" not in answer
    assert b"This link does not work" in answer.content


def test_a_raw_url_in_the_path_is_no_redirect(client) -> None:
    for path in ("/e/c/https://evil.example/", "/e/c/https:%2F%2Fevil.example%2F", "/e/c/%2F%2Fevil.example"):
        answer = client.get(path)
        assert answer.status_code in (400, 404)
        assert "Location" not in answer


def test_changing_the_target_inside_a_real_link_breaks_it(client) -> None:
    real = tokens.click_token(1, "https://shop.example/")
    forged = signing.dumps([1, "https://evil.example/"], salt=tokens.CLICK_SALT).split(":")[0]
    tampered = forged + real[real.index(":") :]  # our signature, another payload
    answer = client.get(reverse("outreach:click", args=[tampered]))
    assert answer.status_code == 400
    assert "Location" not in answer


def test_a_tampered_pixel_is_a_400_and_records_nothing(client) -> None:
    answer = client.get(reverse("outreach:open", args=[tokens.open_token(1) + "x"]))
    assert answer.status_code == 400
    assert not Interaction.objects.filter(kind=InteractionKind.EMAIL_OPEN).exists()


def test_consent_withdrawn_after_sending_still_redirects_but_records_nothing(client) -> None:
    user = make_user()
    lead = make_lead(owner=user, marketing_consent=True)
    send(lead, user)
    body, html = mail.outbox[0].body, mail.outbox[0].alternatives[0][0]
    crm.record_consent(lead=lead, purpose="marketing", granted=False, source="salesperson")

    click = client.get(path_of(next(u for u in links(body) if "/e/c/" in u)))
    pixel = client.get(path_of(next(u for u in links(html) if "/e/o/" in u)))

    assert click.status_code == 302
    assert pixel.status_code == 200
    assert not Interaction.objects.filter(
        kind__in=[InteractionKind.EMAIL_OPEN, InteractionKind.EMAIL_CLICK]
    ).exists()


def test_tracking_endpoints_are_limited_per_address(client, settings) -> None:
    settings.EMAIL_TRACKING_RATE_PER_MINUTE = 2
    url = reverse("outreach:open", args=[tokens.open_token(1)])
    assert [client.get(url).status_code for _ in range(3)] == [200, 200, 429]


def test_the_tracking_pages_are_not_in_the_api_schema(client) -> None:
    user = make_user()
    client.force_login(user)
    schema = client.get("/api/v1/schema/?format=json").json()
    assert "/api/v1/email/inbound" in schema["paths"]
    assert not [p for p in schema["paths"] if p.startswith("/e/")]


# --- Replies ---------------------------------------------------------------------------------------


def inbound(client, body: dict, secret: str | None = SECRET):
    headers = {"HTTP_X_LEADCRM_INBOUND_SECRET": secret} if secret is not None else {}
    return client.post("/api/v1/email/inbound", body, content_type="application/json", **headers)


def test_a_reply_is_matched_by_its_in_reply_to_and_recorded_once(client, settings) -> None:
    settings.EMAIL_INBOUND_SECRET = SECRET
    user = make_user()
    lead = make_lead(owner=user)
    email = send(lead, user)
    message_id = mail.outbox[0].extra_headers["Message-ID"]
    body = {
        "from": f"Ada <{lead.email}>",
        "to": "sales@shop.example",
        "subject": "Re: Your quote",
        "text": "Sounds good, call me.",
        "in_reply_to": message_id,
        "message_id": "<reply-1@mail.example>",
    }

    first = inbound(client, body)
    again = inbound(client, body)

    assert first.status_code == 201
    assert first.json()["lead_id"] == lead.pk
    assert first.json()["recorded"]
    assert again.status_code == 200
    assert not again.json()["recorded"]
    reply = Interaction.objects.get(lead=lead, kind=InteractionKind.EMAIL_REPLY)
    assert reply.payload["email_id"] == email.pk
    assert reply.payload["sender_is_lead"] is True
    assert reply.payload["text"] == "Sounds good, call me."


def test_a_reply_to_the_plus_address_is_matched(client, settings) -> None:
    settings.EMAIL_INBOUND_SECRET = SECRET
    settings.EMAIL_REPLY_ADDRESS = "replies@crm.shop.example"
    user = make_user()
    lead = make_lead(owner=user)
    send(lead, user)
    [reply_to] = mail.outbox[0].reply_to
    assert reply_to.startswith("replies+lc.")
    assert reply_to.endswith("@crm.shop.example")

    answer = inbound(client, {"from": "someone@else.example", "to": reply_to, "text": "Forwarded"})

    assert answer.status_code == 201
    assert Interaction.objects.get(kind=InteractionKind.EMAIL_REPLY).payload["sender_is_lead"] is False


def test_inbound_refuses_unauthenticated_posts(client, settings) -> None:
    user = make_user()
    lead = make_lead(owner=user)
    send(lead, user)
    body = {"from": lead.email, "in_reply_to": mail.outbox[0].extra_headers["Message-ID"], "text": "hi"}

    settings.EMAIL_INBOUND_SECRET = ""
    assert inbound(client, body).status_code == 403  # not configured: refuses everything
    settings.EMAIL_INBOUND_SECRET = SECRET
    assert inbound(client, body, secret=None).status_code == 403
    assert inbound(client, body, secret="wrong").status_code == 403
    client.force_login(user)  # a logged-in session is no substitute for the secret
    assert inbound(client, body, secret=None).status_code == 403
    assert not Interaction.objects.filter(kind=InteractionKind.EMAIL_REPLY).exists()


def test_a_forged_token_matches_nothing(client, settings) -> None:
    settings.EMAIL_INBOUND_SECRET = SECRET
    user = make_user()
    lead = make_lead(owner=user)
    email = send(lead, user)
    forged = f"<lc.{email.pk}.{'A' * 43}@shop.example>"
    answer = inbound(client, {"from": lead.email, "in_reply_to": forged, "text": "hi"})
    assert answer.status_code == 400
    assert "in_reply_to" in answer.json()
    assert inbound(client, {"text": "no from"}).status_code == 400


# --- The queue and its sweep ------------------------------------------------------------------------


def test_a_failed_send_stays_queued_and_the_sweep_retries_it(settings) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1  # nothing listens
    user = make_user()
    lead = make_lead(owner=user)
    email = services.send_email(lead=lead, by=user, subject="Hi", text="Hello")
    now = timezone.now()

    failed = services.deliver(email.pk, now=now)

    assert failed is not None
    assert failed.status == EmailStatus.QUEUED
    assert failed.error
    assert services.deliver(email.pk, now=now + timedelta(seconds=30)) is None  # backing off
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    sent = services.deliver(email.pk, now=now + timedelta(minutes=3))
    assert sent is not None
    assert sent.status == EmailStatus.SENT
    assert len(mail.outbox) == 1
