"""Issue 14, hole 2: limits per IP and per site, per minute and per hour; new conversations are
never counted per the browser's own visitor id; opening the widget makes no lead; empty anonymous
chats (and the leads they made) are purged after CHAT_PURGE_EMPTY_AFTER_HOURS."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from chatbot import api, services
from chatbot.models import Conversation, Message, Site
from chatbot.tasks import purge_empty_chats
from demo.site import install_demo_site
from leadcrm.models import Lead

pytestmark = pytest.mark.django_db

ORIGIN = "http://127.0.0.1:8000"
ALWAYS_OPEN = {d: [["00:00", "00:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture
def site():
    site = install_demo_site()
    site.business_hours = ALWAYS_OPEN
    site.save()
    return site


def start(client, site, ip: str = "192.0.2.1", token: str = "", **data):
    headers = {"HTTP_X_CHAT_TOKEN": token} if token else {}
    return client.post(
        f"/api/v1/chat/sites/{site.public_key}/conversations/",
        json.dumps(data),
        content_type="application/json",
        HTTP_ORIGIN=ORIGIN,
        REMOTE_ADDR=ip,
        **headers,
    )


def config(client, site, ip: str = "192.0.2.1"):
    return client.get(f"/api/v1/chat/sites/{site.public_key}/config/", HTTP_ORIGIN=ORIGIN, REMOTE_ADDR=ip)


def test_new_conversations_are_limited_per_ip_whatever_visitor_id_is_sent(client, site, monkeypatch) -> None:
    monkeypatch.setattr(api.ChatStartIpThrottle, "rate", "2/min", raising=False)
    codes = [start(client, site, visitor_id=f"visitor-fresh-{i:04d}").status_code for i in range(3)]
    assert codes == [200, 200, 429]  # was: a new visitor id per request escaped the limit
    assert start(client, site, ip="192.0.2.2").status_code == 200  # another address is unaffected


def test_resuming_the_open_conversation_is_not_a_new_one(client, site, monkeypatch) -> None:
    monkeypatch.setattr(api.ChatStartIpThrottle, "rate", "1/min", raising=False)
    token = start(client, site).json()["token"]
    for _ in range(3):
        resumed = start(client, site, token=token)
        assert resumed.status_code == 200
        assert resumed.json()["resumed"] is True
    assert start(client, site).status_code == 429


def test_new_conversations_are_limited_per_site_across_addresses(client, site, monkeypatch) -> None:
    monkeypatch.setattr(api.ChatStartSiteThrottle, "rate", "2/min", raising=False)
    codes = [start(client, site, ip=f"198.51.100.{i}").status_code for i in range(3)]
    assert codes == [200, 200, 429]
    other = Site.objects.create(name="Other shop", allowed_origins=[ORIGIN])
    assert start(client, other, ip="198.51.100.9").status_code == 200  # one site's flood is its own


def test_hourly_limits_hold_when_the_minute_ones_do_not(client, site, monkeypatch) -> None:
    monkeypatch.setattr(api.ChatIpHourThrottle, "rate", "2/hour", raising=False)
    monkeypatch.setattr(api.ChatSiteHourThrottle, "rate", "4/hour", raising=False)
    assert [config(client, site).status_code for _ in range(3)] == [200, 200, 429]
    assert config(client, site, ip="203.0.113.7").status_code == 200
    assert config(client, site, ip="203.0.113.8").status_code == 429  # the site's hour is used up
    limited = start(client, site, ip="203.0.113.9")
    assert limited.status_code == 429
    assert "Retry-After" in limited


def test_every_chat_limit_has_a_setting() -> None:
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    for throttle in {*api.NEW_CONVERSATION, *api.WRITES}:
        assert throttle.scope in rates, throttle
    assert rates["chat_ip_hour"].endswith("/hour")
    assert rates["chat_site"].endswith("/min")


def test_opening_the_widget_makes_a_conversation_but_no_lead(client, site) -> None:
    for i in range(5):
        assert start(client, site, ip=f"192.0.2.{10 + i}", page_url=f"{ORIGIN}/p{i}").status_code == 200
    assert Conversation.objects.count() == 5
    assert not Lead.objects.exists()


def _old(conversation: Conversation, hours: int) -> None:
    then = timezone.now() - timedelta(hours=hours)
    Conversation.objects.filter(pk=conversation.pk).update(started_at=then, last_message_at=then)


def test_empty_anonymous_chats_and_their_leads_are_purged_after_the_set_age(site) -> None:
    age = settings.CHAT_PURGE_EMPTY_AFTER_HOURS
    opened, _ = services.start_conversation(site=site, visitor_id="visitor-purge-01")
    asked, _ = services.start_conversation(site=site, visitor_id="visitor-purge-02")
    services.request_handoff(conversation=asked)  # makes a lead, but nobody wrote
    wrote, _ = services.start_conversation(site=site, visitor_id="visitor-purge-03")
    services.post_visitor_message(conversation=wrote, text="hello")
    fresh, _ = services.start_conversation(site=site, visitor_id="visitor-purge-04")
    verified, _ = services.start_conversation(
        site=site,
        identity_email="v@example.com",
        identity_signature=site.identity_signature("v@example.com"),
    )
    for conversation in (opened, asked, wrote, verified):
        _old(conversation, hours=age + 1)
    asked.refresh_from_db()
    wrote.refresh_from_db()

    purged = purge_empty_chats()

    assert purged == (2, 1)
    left = set(Conversation.objects.values_list("pk", flat=True))
    assert left == {wrote.pk, fresh.pk, verified.pk}
    assert not Lead.objects.filter(pk=asked.lead_id).exists()
    assert Lead.objects.filter(pk=wrote.lead_id).exists()
    assert Lead.objects.filter(email="v@example.com").exists()
    assert not Message.objects.filter(conversation_id__in=[opened.pk, asked.pk]).exists()
    assert purge_empty_chats() == (0, 0)  # safe to run twice


def test_a_reused_anonymous_lead_with_history_is_kept(site) -> None:
    first, _ = services.start_conversation(site=site, visitor_id="visitor-keep-0001")
    services.post_visitor_message(conversation=first, text="hello")
    first.refresh_from_db()
    services.close_conversation(conversation=first)
    again, _ = services.start_conversation(site=site, visitor_id="visitor-keep-0001", token=first.token)
    assert again.lead_id == first.lead_id
    _old(again, hours=settings.CHAT_PURGE_EMPTY_AFTER_HOURS + 1)
    assert purge_empty_chats() == (1, 0)
    assert Lead.objects.filter(pk=first.lead_id).exists()


def test_the_purge_runs_from_beat() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["chat-purge-empty"]
    assert entry["task"] == "chatbot.tasks.purge_empty_chats"
