"""The pure reply policy: greetings by time zone, business-hours edges, handoff, FAQ threshold."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chatbot import bot
from chatbot.bot import BotState, FaqHit

WEEKDAYS_9_TO_17 = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
GREETINGS = {
    "morning": "Good morning{name}!",
    "afternoon": "Good afternoon{name}!",
    "evening": "Good evening{name}!",
    "night": "Hi{name}, we're asleep.",
}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "tz", "expected"),
    [
        (utc(2026, 1, 14, 7, 0), "Europe/Berlin", "Good morning!"),  # 08:00 in Berlin (CET)
        (utc(2026, 1, 14, 7, 0), "America/New_York", "Hi, we're asleep."),  # 02:00 in New York
        (utc(2026, 1, 14, 7, 0), "Asia/Tokyo", "Good afternoon!"),  # 16:00 in Tokyo
        (utc(2026, 1, 14, 17, 0), "Europe/Berlin", "Good evening!"),  # 18:00 in Berlin
        (utc(2026, 7, 14, 3, 0), "Europe/Berlin", "Good morning!"),  # 05:00 CEST (summer time)
        (utc(2026, 1, 14, 3, 59), "Europe/Berlin", "Hi, we're asleep."),  # 04:59 CET: still night
    ],
)
def test_greeting_by_time_of_day_in_the_sites_zone(now: datetime, tz: str, expected: str) -> None:
    assert bot.greeting(GREETINGS, tz=tz, now=now) == expected


def test_greeting_uses_name_and_segment_template() -> None:
    now = utc(2026, 1, 14, 9, 0)
    assert bot.greeting(GREETINGS, tz="UTC", now=now, name="Ada") == "Good morning, Ada!"
    assert (
        bot.greeting(GREETINGS, tz="UTC", now=now, name="Ada", template="Welcome back{name}, VIP!")
        == "Welcome back, Ada, VIP!"
    )


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 1, 14, 7, 59, 59), False),  # Wed 08:59:59 Berlin
        (utc(2026, 1, 14, 8, 0), True),  # Wed 09:00 opens exactly
        (utc(2026, 1, 14, 15, 59), True),  # 16:59
        (utc(2026, 1, 14, 16, 0), False),  # 17:00 closed: the end is exclusive
        (utc(2026, 1, 17, 10, 0), False),  # Saturday
        (utc(2026, 1, 16, 22, 30), False),  # Fri 23:30 Berlin
    ],
)
def test_business_hours_edges(now: datetime, expected: bool) -> None:
    assert bot.is_open(WEEKDAYS_9_TO_17, "Europe/Berlin", now) is expected


def test_business_hours_follow_the_sites_zone_not_utc() -> None:
    now = utc(2026, 1, 14, 14, 30)  # 14:30 UTC = 09:30 New York, 15:30 Berlin... 23:30 Tokyo
    assert bot.is_open(WEEKDAYS_9_TO_17, "America/New_York", now)
    assert not bot.is_open(WEEKDAYS_9_TO_17, "Asia/Tokyo", now)


def test_midnight_end_means_open_until_end_of_day() -> None:
    hours = {"sat": [["18:00", "00:00"]]}
    assert bot.is_open(hours, "UTC", utc(2026, 1, 17, 23, 59))
    assert not bot.is_open(hours, "UTC", utc(2026, 1, 17, 17, 59))


def test_next_opening_skips_the_weekend() -> None:
    friday_evening = utc(2026, 1, 16, 18, 0)  # Fri 19:00 Berlin
    opens = bot.next_opening(WEEKDAYS_9_TO_17, "Europe/Berlin", friday_evening)
    assert opens is not None
    assert (opens.strftime("%a %H:%M"), opens.astimezone(UTC).hour) == ("Mon 09:00", 8)
    assert bot.next_opening({}, "UTC", friday_evening) is None


HIT = FaqHit(entry_id=7, question="What are your opening hours?", answer="9 to 5.", confidence=0.8)


def test_confident_faq_hit_is_answered_and_asks_if_it_helped() -> None:
    reply = bot.reply_to("when are you open", state=BotState(threshold=0.35), hit=HIT, sentiment=0.0)
    assert (reply.action, reply.text, reply.faq_id) == ("answer", "9 to 5.", 7)
    assert {a["type"] for a in reply.actions} == {"helpful"}
    assert not reply.unanswered


def test_below_threshold_confirms_then_offers_a_person() -> None:
    weak = FaqHit(7, "What are your opening hours?", "9 to 5.", confidence=0.3)
    first = bot.reply_to("opening?", state=BotState(threshold=0.35), hit=weak, sentiment=0.0)
    assert first.action == "confirm"
    assert first.unanswered
    assert "Did you mean" in first.text
    assert first.faq_id == 7
    assert "9 to 5." not in first.text
    second = bot.reply_to(
        "opening??", state=BotState(unsure_count=first.unsure_count, threshold=0.35), hit=weak, sentiment=0.0
    )
    assert second.action == "offer_human"
    assert bot.HUMAN_ACTION in second.actions


def test_nothing_close_asks_to_rephrase() -> None:
    far = FaqHit(7, "Q", "A", confidence=0.05)
    reply = bot.reply_to("do you sell rockets", state=BotState(threshold=0.35), hit=far, sentiment=0.0)
    assert reply.action == "rephrase"
    assert reply.unanswered


@pytest.mark.parametrize(
    "text", ["I want to talk to a human", "Can I speak to someone?", "agent please", "real person!"]
)
def test_explicit_request_hands_off(text: str) -> None:
    assert bot.reply_to(text, state=BotState(), hit=HIT, sentiment=0.0).action == "handoff"


def test_repeated_negative_sentiment_hands_off() -> None:
    first = bot.reply_to("this is useless", state=BotState(negative_limit=2), hit=None, sentiment=-0.6)
    assert first.action != "handoff"
    assert first.negative_count == 1
    second = bot.reply_to(
        "awful, terrible", state=BotState(negative_count=1, negative_limit=2), hit=None, sentiment=-0.7
    )
    assert second.action == "handoff"
    assert "sorry" in second.text.lower()


def test_mildly_negative_does_not_count() -> None:
    reply = bot.reply_to("not sure", state=BotState(negative_count=1), hit=None, sentiment=-0.2)
    assert reply.negative_count == 1


def test_stated_interests_and_city() -> None:
    assert bot.stated_interests("I'm interested in wedding cakes and catering.") == [
        "wedding cakes",
        "catering",
    ]
    assert bot.stated_city("I'm from Lisbon.") == "Lisbon"
    assert bot.stated_city("i am fine") == ""


def test_out_of_hours_handoff_offers_a_callback_at_next_opening() -> None:
    opens = datetime(2026, 1, 19, 9, 0, tzinfo=bot.ZoneInfo("Europe/Berlin"))
    text, actions = bot.handoff_text(open_now=False, opens_at=opens, has_contact=False)
    assert "Mon 09:00" in text
    assert [a["type"] for a in actions] == ["identify", "callback", "follow_up"]  # or an email
    assert actions[1]["due_at"] == opens.isoformat()
