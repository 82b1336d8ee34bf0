"""The bot's reply policy: pure functions of the text, the conversation state and `now`.

No ORM and no I/O here, so every rule (greeting by time of day in the site's time zone, business
hours edges, when to hand off) is tested without a database. services.py feeds it and stores what
it decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# A visitor message at or below this VADER compound score counts as negative.
NEGATIVE_SENTIMENT = -0.35

HANDOFF_RE = re.compile(
    r"\b(human|humans|agent|real person|a person|someone real|operator|representative|"
    r"talk to (?:someone|somebody|a person|you|staff|sales)|speak (?:to|with) (?:someone|somebody|a person|staff|sales)|"
    r"call me|customer service|live chat)\b",
    re.IGNORECASE,
)
INTEREST_RE = re.compile(
    r"\b(?:i(?:'m| am) (?:interested in|looking for)|interested in|i(?:'d| would) like)\s+(?P<what>[^.!?\n]{2,80})",
    re.IGNORECASE,
)
LOCATION_RE = re.compile(
    r"\b[Ii](?:'m| am) (?:from|in|based in|located in)\s+(?P<city>[A-Z][\w' -]{1,40}?)(?:[.,!?]|$)",
)
GREETING_RE = re.compile(r"^\s*(hi|hello|hey|hallo|good (?:morning|afternoon|evening)|howdy)\b[\s!.]*$", re.I)
THANKS_RE = re.compile(
    r"^\s*(thanks|thank you|thx|cheers|great|perfect|ok(?:ay)?)\b[\s!.]*(?:a lot|so much)?[\s!.]*$", re.I
)


# --- Business hours and greetings ---------------------------------------------------------------


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _spans(business_hours: dict[str, Any], day: int) -> list[tuple[int, int]]:
    spans = []
    for start, end in business_hours.get(WEEKDAYS[day], []) or []:
        end_min = _minutes(end)
        spans.append((_minutes(start), 24 * 60 if end_min == 0 else end_min))  # "00:00" end = midnight
    return sorted(spans)


def is_open(business_hours: dict[str, Any], tz: str, now: datetime) -> bool:
    """Open at `now` in the site's time zone? Spans include their start and exclude their end."""
    local = now.astimezone(ZoneInfo(tz))
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in _spans(business_hours, local.weekday()))


def next_opening(business_hours: dict[str, Any], tz: str, now: datetime) -> datetime | None:
    """The next moment (aware, site time zone) the business opens after `now`; None if never."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    for offset in range(8):
        day: date = local.date() + timedelta(days=offset)
        for start, _end in _spans(business_hours, day.weekday()):
            candidate = datetime.combine(day, time(start // 60, start % 60), tzinfo=zone)
            if candidate > local:
                return candidate
    return None


def time_of_day(local: datetime) -> str:
    hour = local.hour
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 18:
        return "afternoon"
    if 18 <= hour < 22:
        return "evening"
    return "night"


def greeting(greetings: dict[str, str], *, tz: str, now: datetime, name: str = "", template: str = "") -> str:
    """The greeting for this time of day in the site's zone; `{name}` becomes ", Ada" or nothing."""
    local = now.astimezone(ZoneInfo(tz))
    text = template or greetings.get(time_of_day(local)) or "Hello{name}! How can we help?"
    return text.replace("{name}", f", {name}" if name else "")


def format_opening(moment: datetime) -> str:
    return moment.strftime("%a %H:%M")


# --- What the visitor said ----------------------------------------------------------------------


def wants_human(text: str) -> bool:
    return bool(HANDOFF_RE.search(text))


def stated_interests(text: str) -> list[str]:
    """'I'm interested in wedding cakes and catering' -> ['wedding cakes', 'catering']."""
    found = INTEREST_RE.search(text)
    if not found:
        return []
    what = re.split(r",|\band\b|\bor\b", found.group("what"))
    return [w.strip(" .").lower() for w in what if 1 < len(w.strip(" .")) <= 60][:5]


def stated_city(text: str) -> str:
    found = LOCATION_RE.search(text.strip())
    return found.group("city").strip() if found else ""


def is_negative(sentiment: float | None) -> bool:
    return sentiment is not None and sentiment <= NEGATIVE_SENTIMENT


# --- The reply ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BotState:
    unsure_count: int = 0
    negative_count: int = 0
    negative_limit: int = 2
    threshold: float = 0.35


@dataclass(frozen=True)
class FaqHit:
    entry_id: int
    question: str
    answer: str
    confidence: float


@dataclass
class Reply:
    action: str  # answer | confirm | rephrase | offer_human | handoff | smalltalk
    text: str
    faq_id: int | None = None
    confidence: float | None = None
    unanswered: bool = False
    actions: list[dict[str, Any]] = field(default_factory=list)
    unsure_count: int = 0
    negative_count: int = 0
    interests: list[str] = field(default_factory=list)
    city: str = ""


class Carried(TypedDict):
    """What the visitor revealed so far; every reply carries it, whatever its action."""

    negative_count: int
    interests: list[str]
    city: str


HUMAN_ACTION = {"type": "handoff", "label": "Talk to a person"}
# The widget's "identify" form: name and email, so someone can answer the question later.
LEAVE_QUESTION_ACTION = {"type": "identify", "label": "Leave your question"}
DECLINE_ACTIONS = [HUMAN_ACTION, LEAVE_QUESTION_ACTION]
NOT_SURE = "I'm not sure about that one, and I don't want to guess."
GET_A_PERSON = " I can get you a person, or you can leave your question and we'll get back to you."
HELPFUL_ACTIONS = [
    {"type": "helpful", "value": True, "label": "Yes, thanks"},
    {"type": "helpful", "value": False, "label": "No"},
]


def reply_to(text: str, *, state: BotState, hit: FaqHit | None, sentiment: float | None) -> Reply:
    """Decide the bot's answer to one visitor message (the conversation is with the bot)."""
    negative = state.negative_count + (1 if is_negative(sentiment) else 0)
    interests, city = stated_interests(text), stated_city(text)
    base: Carried = {"negative_count": negative, "interests": interests, "city": city}
    if wants_human(text):
        return Reply("handoff", "", unsure_count=0, **base)
    if negative >= state.negative_limit:
        return Reply(
            "handoff", "I'm sorry this has been frustrating. Let me get you a person.", unsure_count=0, **base
        )
    noted = f"Noted: you're interested in {', '.join(interests)}. " if interests else ""
    if city:
        noted += f"Thanks, I've noted {city}. "
    if hit is not None and hit.confidence >= state.threshold:
        return Reply(
            "answer",
            noted + hit.answer,
            faq_id=hit.entry_id,
            confidence=hit.confidence,
            actions=[*HELPFUL_ACTIONS],
            unsure_count=0,
            **base,
        )
    if GREETING_RE.match(text):
        return Reply(
            "smalltalk",
            "Hi! Ask me anything, or talk to a person.",
            actions=[HUMAN_ACTION],
            **base,
            unsure_count=state.unsure_count,
        )
    if THANKS_RE.match(text) or (noted and hit is None):
        return Reply(
            "smalltalk",
            (noted or "You're welcome! ") + "Anything else I can help with?",
            **base,
            unsure_count=state.unsure_count,
        )
    # Below the threshold the bot says it does not know, and offers a person or to leave the
    # question (which lands in the managers' unanswered-questions list either way).
    unsure = state.unsure_count + 1
    confidence = hit.confidence if hit else None
    if unsure >= 2:
        return Reply(
            "offer_human",
            noted + NOT_SURE + " Would you like to talk to a person, or leave your question?",
            faq_id=hit.entry_id if hit else None,
            confidence=confidence,
            unanswered=True,
            actions=[*DECLINE_ACTIONS],
            unsure_count=unsure,
            **base,
        )
    if hit is not None and hit.confidence >= state.threshold * 0.5:
        return Reply(
            "confirm",
            noted + NOT_SURE + f" Did you mean: “{hit.question}”?" + GET_A_PERSON,
            faq_id=hit.entry_id,
            confidence=confidence,
            unanswered=True,
            actions=[
                {"type": "confirm", "faq": hit.entry_id, "text": hit.question, "label": "Yes, that"},
                *DECLINE_ACTIONS,
            ],
            unsure_count=unsure,
            **base,
        )
    return Reply(
        "rephrase",
        noted
        + NOT_SURE
        + " You could rephrase it, talk to a person, or leave your question and we'll get back to you.",
        confidence=confidence,
        unanswered=True,
        actions=[*DECLINE_ACTIONS],
        unsure_count=unsure,
        **base,
    )


IDENTIFY_ACTION = {"type": "identify", "label": "Leave my details"}
# When nobody can answer live: the header's and the quick replies' "Talk to a person" reads so.
LEAVE_MESSAGE_LABEL = "Leave a message / request a callback"


def follow_up_actions(*, opens_at: datetime | None, open_now: bool) -> list[dict[str, Any]]:
    """Instead of waiting: a callback (at the next opening when closed) or an email follow-up."""
    if not open_now and opens_at is not None:
        when = format_opening(opens_at)
        call: dict[str, Any] = {
            "type": "callback",
            "due_at": opens_at.isoformat(),
            "label": f"Call me back {when}",
        }
    else:
        call = {"type": "follow_up", "via": "phone", "label": "Call me back"}
    return [call, {"type": "follow_up", "via": "email", "label": "Email me instead"}]


def handoff_text(
    *,
    open_now: bool,
    opens_at: datetime | None,
    has_contact: bool,
    live: bool = True,
    usual_wait: str = "",
) -> tuple[str, list[dict[str, Any]]]:
    """What the bot says when handing off: a person now (with the usual wait, when known), or,
    when nobody can answer live (closed, or nobody on duty), a callback or an email follow-up.

    `usual_wait` finishes "Our team usually replies …" (chatbot.waits.wait_phrase); "" says no number."""
    if open_now and live:
        wait = f" Our team usually replies {usual_wait}." if usual_wait else ""
        if has_contact:
            return f"I'm connecting you with a person now.{wait} They'll reply right here.", []
        return (
            f"I'm connecting you with a person now.{wait} They'll reply right here. "
            "If you like, leave your name and email so we can follow up.",
            [{**IDENTIFY_ACTION}],
        )
    actions = follow_up_actions(opens_at=opens_at, open_now=open_now)
    if not has_contact:
        actions.insert(0, {**IDENTIFY_ACTION})
    reach = "" if has_contact else " Leave your email or phone so we can reach you."
    if open_now:
        return (
            "Nobody from our team is free to chat right now. Leave your message here and we can call "
            "you back or email you as soon as someone is free." + reach,
            actions,
        )
    if opens_at is None:
        return "We can't take live chats right now. We can email you or call you back." + reach, actions
    when = format_opening(opens_at)
    return (
        f"We're closed right now. We can call you back when we open ({when}), or email you." + reach,
        actions,
    )
