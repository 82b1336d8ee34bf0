"""The honest wait: the usual reply time from real hand-offs, no live offer when nobody is on duty,
a callback or an email instead of waiting, and no way to flood the team with promises."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from chatbot import bot, services, waits
from chatbot.models import Conversation, Message, Sender, Site
from demo.site import install_demo_site
from leadcrm import services as crm
from leadcrm.models import FollowUp
from tests.factories import make_manager, make_user

pytestmark = pytest.mark.django_db

ORIGIN = "http://127.0.0.1:8000"
ALWAYS_OPEN = {d: [["00:00", "00:00"]] for d in bot.WEEKDAYS}
UTC = ZoneInfo("UTC")


@pytest.fixture
def site() -> Site:
    site = install_demo_site()
    site.business_hours = ALWAYS_OPEN
    site.save()
    make_manager("boss", first_name="Morgan")  # every promise has an owner: at least the manager
    return site


def on_duty(username: str = "sam"):
    user = make_user(username, first_name=username.title())
    crm.set_on_duty(user=user, on_duty=True)
    return user


def answered(site: Site, *, handoff_at: datetime, wait_s: float) -> Conversation:
    """A past hand-off that an agent answered after `wait_s` seconds."""
    conversation = Conversation.objects.create(
        site=site,
        visitor_id="v-wait",
        handoff_at=handoff_at,
        started_at=handoff_at,
        last_message_at=handoff_at,
    )
    # An agent message from before the hand-off (e.g. a proactive greeting) is not the reply.
    Message.objects.create(
        conversation=conversation,
        sender=Sender.AGENT,
        text="earlier",
        created_at=handoff_at - timedelta(hours=1),
    )
    Message.objects.create(
        conversation=conversation,
        sender=Sender.AGENT,
        text="Hi!",
        created_at=handoff_at + timedelta(seconds=wait_s),
    )
    Message.objects.create(
        conversation=conversation,
        sender=Sender.AGENT,
        text="later",
        created_at=handoff_at + timedelta(seconds=wait_s + 600),
    )
    return conversation


# --- Pure -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "phrase"),
    [
        (None, ""),
        (12, "in under a minute"),
        (75, "in about a minute"),
        (130, "in about 2 minutes"),
        (7.6 * 60, "in about 8 minutes"),
        (11 * 60, "in about 10 minutes"),
        (23 * 60, "in about 25 minutes"),
        (50 * 60, "within the hour"),
        (3 * 3600, "within a few hours"),
        (20 * 3600, "within a day"),
        (3 * 86400, ""),
    ],
)
def test_wait_phrase_rounds_humanely(seconds, phrase) -> None:
    assert waits.wait_phrase(seconds) == phrase


def test_too_few_waits_give_no_number() -> None:
    assert waits.median_seconds([30, 40, 50, 60]) is None
    assert waits.median_seconds([30, 40, 50, 60, 500]) == 50
    assert waits.median_seconds([10, 20, 30, 40, 50, 60]) == 35


# --- The query (PostgreSQL's percentile_cont and the fallback agree) -----------------------------------


@pytest.mark.parametrize("in_database", [True, False], ids=["percentile_cont", "fallback"])
def test_usual_wait_is_the_median_of_recent_answered_hand_offs_in_hours(site, in_database) -> None:
    from django.db import connection

    if in_database and connection.vendor != "postgresql":
        pytest.skip("percentile_cont is PostgreSQL's")
    site.timezone = "Europe/Berlin"
    site.business_hours = {"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]]}
    site.save()
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime(2026, 11, 25, 12, 0, tzinfo=berlin)  # a Wednesday
    monday = datetime(2026, 11, 23, 10, 0, tzinfo=berlin)
    for i, wait in enumerate([60, 90, 120, 150, 600]):
        answered(site, handoff_at=monday + timedelta(minutes=30 * i), wait_s=wait)
    # Not counted: at night (a reply next morning), on a closed day, too old, never answered,
    # another site's.
    answered(site, handoff_at=datetime(2026, 11, 23, 22, 0, tzinfo=berlin), wait_s=36000)
    answered(site, handoff_at=datetime(2026, 11, 22, 11, 0, tzinfo=berlin), wait_s=7200)  # Sunday
    answered(site, handoff_at=monday - timedelta(days=21), wait_s=5000)
    Conversation.objects.create(site=site, handoff_at=monday)
    other = Site.objects.create(name="Other", public_key="pk_other")
    answered(other, handoff_at=monday, wait_s=9000)

    wait = waits.compute_usual_wait(site, now=now, in_database=in_database)

    assert wait.samples == 5
    assert wait.seconds == pytest.approx(120)
    assert wait.phrase == "in about 2 minutes"


@pytest.mark.parametrize("in_database", [True, False], ids=["percentile_cont", "fallback"])
def test_few_hand_offs_say_nothing_numeric(site, in_database) -> None:
    from django.db import connection

    if in_database and connection.vendor != "postgresql":
        pytest.skip("percentile_cont is PostgreSQL's")
    now = timezone.now()
    for wait in (60, 70, 80, 90):
        answered(site, handoff_at=now - timedelta(hours=2), wait_s=wait)
    wait = waits.compute_usual_wait(site, now=now, in_database=in_database)
    assert wait.samples == 4
    assert wait.seconds is None
    assert wait.phrase == ""


def test_only_the_last_fifty_hand_offs_count(site) -> None:
    now = timezone.now()
    for i in range(waits.SAMPLE_SIZE):
        answered(site, handoff_at=now - timedelta(hours=1, minutes=i), wait_s=60)
    for i in range(20):  # older, slower: beyond the last 50
        answered(site, handoff_at=now - timedelta(days=2, minutes=i), wait_s=3000)
    wait = waits.compute_usual_wait(site, now=now)
    assert wait.samples == waits.SAMPLE_SIZE
    assert wait.seconds == pytest.approx(60)


def test_the_figure_is_cached_per_site(site, django_assert_num_queries) -> None:
    now = timezone.now()
    first = waits.usual_wait(site, now=now)
    with django_assert_num_queries(0):
        assert waits.usual_wait(site, now=now) == first


# --- Hand-off: live only with someone on duty ------------------------------------------------------


def test_nobody_on_duty_gets_no_live_offer_but_a_callback_or_an_email(site) -> None:
    make_user("off-duty")  # a salesperson exists, but is not on duty
    conversation, _ = services.start_conversation(site=site, visitor_id="visitor-nobody-01")
    (message,) = services.request_handoff(conversation=conversation)
    assert "connecting you" not in message.text
    assert "Nobody from our team is free" in message.text
    assert [(a["type"], a.get("via")) for a in message.actions] == [
        ("identify", None),
        ("follow_up", "phone"),
        ("follow_up", "email"),
    ]


def test_someone_on_duty_hears_the_usual_wait(site) -> None:
    on_duty()
    now = timezone.now()
    for wait in (100, 110, 120, 130, 140):
        answered(site, handoff_at=now - timedelta(hours=3), wait_s=wait)
    conversation, _ = services.start_conversation(site=site, visitor_id="visitor-onduty-01")
    (message,) = services.request_handoff(conversation=conversation)
    assert "connecting you with a person now. Our team usually replies in about 2 minutes." in message.text
    assert Conversation.objects.get(pk=conversation.pk).status == "waiting"


def test_someone_on_duty_without_enough_history_hears_no_number(site) -> None:
    on_duty()
    conversation, _ = services.start_conversation(site=site, visitor_id="visitor-onduty-02")
    (message,) = services.request_handoff(conversation=conversation)
    assert "connecting you with a person now" in message.text
    assert "usually" not in message.text
    assert not any(ch.isdigit() for ch in message.text)


def test_outside_hours_the_visitor_is_offered_a_callback_at_opening_or_an_email(site) -> None:
    on_duty()  # on duty, but the site is closed
    site.business_hours = {"mon": [["09:00", "10:00"]]}
    site.save()
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
    conversation, _ = services.start_conversation(site=site, visitor_id="visitor-closed-01", now=now)
    (message,) = services.request_handoff(conversation=conversation, now=now)
    assert "We're closed right now" in message.text
    types = [a["type"] for a in message.actions]
    assert types == ["identify", "callback", "follow_up"]
    assert message.actions[1]["due_at"].startswith("2026-11-30T09:00")
    assert message.actions[2]["via"] == "email"


def test_handoff_text_offers_the_follow_ups_when_not_live() -> None:
    text, actions = bot.handoff_text(open_now=True, opens_at=None, has_contact=True, live=False)
    assert "connecting" not in text
    assert [a["via"] for a in actions] == ["phone", "email"]
    text, actions = bot.handoff_text(
        open_now=True, opens_at=None, has_contact=True, live=True, usual_wait="within the hour"
    )
    assert (
        text
        == "I'm connecting you with a person now. Our team usually replies within the hour. They'll reply right here."
    )
    assert actions == []


# --- Follow-ups instead of waiting ------------------------------------------------------------------


def identified(site: Site, visitor_id: str, *, email: str = "", phone: str = "") -> Conversation:
    conversation, _ = services.start_conversation(site=site, visitor_id=visitor_id)
    services.request_handoff(conversation=conversation)
    services.identify_visitor(
        conversation=conversation, name="Rosa", email=email, phone=phone, contact_consent=True
    )
    return Conversation.objects.get(pk=conversation.pk)


def test_email_follow_up_needs_an_email_and_is_due_now_while_open(site) -> None:
    conversation = identified(site, "visitor-phone-01", phone="+49 30 1234")
    with pytest.raises(ValidationError, match="email address"):
        services.request_follow_up(conversation=conversation, via="email")
    now = timezone.now()
    follow_up = services.request_follow_up(conversation=conversation, via="phone", now=now)
    assert follow_up.due_at == now
    assert follow_up.note.startswith("Chat callback")
    assert conversation.messages.order_by("-id")[0].text.endswith(
        "will call you back as soon as someone is free."
    )


def test_identifying_after_asking_with_nobody_on_duty_offers_the_follow_ups_again(site) -> None:
    conversation = identified(site, "visitor-ident-01", email="rosa@example.com")
    thanks = conversation.messages.order_by("-id")[0]
    assert "Shall we call you back or email you?" in thanks.text
    assert [a["type"] for a in thanks.actions] == ["follow_up", "follow_up"]


def test_asking_again_moves_the_one_open_promise_instead_of_adding(site) -> None:
    conversation = identified(site, "visitor-again-01", email="again@example.com")
    first = services.request_follow_up(conversation=conversation, via="phone")
    for via in ("email", "phone", "email"):
        services.request_follow_up(conversation=conversation, via=via)
    assert FollowUp.objects.filter(lead=conversation.lead_id, done_at__isnull=True).count() == 1
    first.refresh_from_db()
    assert first.note.startswith("Chat email follow-up")


def test_out_of_hours_email_follow_up_is_due_at_the_next_opening(site) -> None:
    site.timezone = "UTC"
    site.business_hours = {"mon": [["09:00", "10:00"]]}
    site.save()
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    conversation, _ = services.start_conversation(site=site, visitor_id="visitor-closed-02", now=now)
    services.identify_visitor(
        conversation=conversation, email="closed@example.com", contact_consent=True, now=now
    )
    follow_up = services.request_follow_up(conversation=conversation, via="email", now=now)
    assert follow_up.due_at == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert "will email you when we open (Mon 09:00)" in conversation.messages.order_by("-id")[0].text


# --- The API ----------------------------------------------------------------------------------------


def url(site: Site, path: str) -> str:
    return f"/api/v1/chat/sites/{site.public_key}/{path}"


def post(client, path: str, data=None, token: str = "", **extra):
    headers = {"HTTP_X_CHAT_TOKEN": token} if token else {}
    return client.post(
        path, json.dumps(data or {}), content_type="application/json", HTTP_ORIGIN=ORIGIN, **headers, **extra
    )


def test_config_says_whether_a_person_can_answer_live(client, site) -> None:
    config = client.get(url(site, "config/"), HTTP_ORIGIN=ORIGIN).json()
    assert config["live_agents"] is False
    assert config["usual_wait"] == ""
    assert config["callback_offer_after_s"] == 120
    on_duty()
    now = timezone.now()
    for wait in (30, 40, 50, 40, 40):
        answered(site, handoff_at=now - timedelta(hours=1), wait_s=wait)
    config = client.get(url(site, "config/"), HTTP_ORIGIN=ORIGIN).json()
    assert config["live_agents"] is True
    assert config["usual_wait"] == "in under a minute"


def test_config_is_not_live_outside_hours_even_with_someone_on_duty(client, site) -> None:
    on_duty()
    site.business_hours = {}
    site.save()
    assert client.get(url(site, "config/"), HTTP_ORIGIN=ORIGIN).json()["live_agents"] is False


def test_follow_up_endpoint_asks_for_details_then_keeps_one_promise(client, site) -> None:
    token = post(client, url(site, "conversations/"), {"visitor_id": "visitor-api-0001"}).json()["token"]
    post(client, url(site, "conversation/handoff/"), token=token)
    no_contact = post(client, url(site, "conversation/follow-up/"), {"via": "email"}, token=token)
    assert no_contact.status_code == 400
    assert "contact" in no_contact.json()
    assert post(client, url(site, "conversation/follow-up/"), {"via": "fax"}, token=token).status_code == 400
    post(
        client,
        url(site, "conversation/identify/"),
        {"email": "api@example.com", "contact_consent": True},
        token=token,
    )
    for _ in range(3):
        ok = post(client, url(site, "conversation/follow-up/"), {"via": "email"}, token=token)
        assert ok.status_code == 200
    assert ok.json()["messages"][0]["text"].endswith("will email you as soon as someone is free.")
    assert FollowUp.objects.count() == 1


def test_one_client_cannot_flood_the_team_with_promises_from_new_chats(client, site, monkeypatch) -> None:
    from chatbot import api

    monkeypatch.setattr(api.ChatStartIpThrottle, "rate", "100/min", raising=False)  # only the promise limit
    statuses = []
    for i in range(12):  # a new conversation (and lead) each time, from one IP
        token = post(client, url(site, "conversations/"), {"visitor_id": f"visitor-flood-{i:04d}"}).json()[
            "token"
        ]
        post(
            client,
            url(site, "conversation/identify/"),
            {"phone": f"+49 30 {i:04d}", "contact_consent": True},
            token=token,
        )
        statuses.append(
            post(client, url(site, "conversation/follow-up/"), {"via": "phone"}, token=token).status_code
        )
    assert statuses[:10] == [200] * 10
    assert statuses[10:] == [429, 429]
    assert FollowUp.objects.count() == 10


def test_the_offer_delay_is_a_site_setting_with_sane_bounds(site) -> None:
    site.callback_offer_after_s = 5
    with pytest.raises(ValidationError):
        site.full_clean()
    site.callback_offer_after_s = 300
    site.full_clean()


# --- The demo ---------------------------------------------------------------------------------------


def test_demo_chat_history_gives_a_real_figure_and_nothing_in_the_future(site) -> None:
    from demo.chat_history import CHATS, seed_chat_history
    from leadcrm.models import Interaction
    from tests.factories import make_lead

    now = timezone.now()
    make_user("sales1", first_name="Sam")
    for _ in range(CHATS):
        make_lead(created_at=now - timedelta(days=40))

    said = seed_chat_history(site, now=now)

    wait = waits.compute_usual_wait(site, now=now)
    assert wait.samples >= waits.MIN_SAMPLES
    assert wait.seconds is not None
    assert 30 < wait.seconds < 600
    assert wait.phrase in said
    assert not Message.objects.filter(created_at__gt=now).exists()
    assert not Interaction.objects.filter(occurred_at__gt=now).exists()
    assert not Conversation.objects.filter(handoff_at__gt=now).exists()
    count = Conversation.objects.count()
    assert seed_chat_history(site, now=now) == "Chat: recent hand-offs already there."
    assert Conversation.objects.count() == count
