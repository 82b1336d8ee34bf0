"""Suggested next step and talking points for one lead, from transparent rules. Pure: no ORM, no I/O.

The lead context page gathers a `LeadFacts` (recent interactions, status, follow-ups…) and asks
`advise(facts, now=…)`. Every suggestion carries the evidence it was derived from (`because`), so a
salesperson can see *why* the page says "offer the annual plan comparison" and judge it.
"""

from __future__ import annotations

import re
import zoneinfo
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

FRUSTRATED_BELOW = -0.3  # average sentiment of the last chat at or below this reads as frustrated
HAPPY_ABOVE = 0.4
CONVERSATION_GAP = timedelta(hours=1)  # chat messages further apart start a new conversation
QUIET_AFTER = timedelta(days=30)
RECENT = timedelta(days=14)
BUSINESS_HOURS = (9, 18)  # local time at the lead, for "good time to call"


@dataclass(frozen=True)
class Topic:
    """A subject visitors raise in chat, the words that reveal it, and what to do about it."""

    slug: str
    label: str
    pattern: re.Pattern[str]
    advice: str


TOPICS: tuple[Topic, ...] = (
    Topic(
        "pricing",
        "pricing",
        re.compile(r"\b(pric\w*|cost\w*|expensive|cheap\w*|annual plan|discount\w*|budget)\b", re.I),
        "offer the annual plan comparison",
    ),
    Topic("demo", "a demo", re.compile(r"\bdemo\w*\b", re.I), "propose two demo slots"),
    Topic(
        "integrations",
        "integrations",
        re.compile(r"\b(integrat\w*|api|connect\w*|shop system|plugin\w*|sync\w*)\b", re.I),
        "ask which tools they use and show the integrations page",
    ),
    Topic(
        "trial",
        "the free trial",
        re.compile(r"\b(free trial|trial)\b", re.I),
        "offer a guided trial setup",
    ),
    Topic(
        "data",
        "data protection",
        re.compile(r"\b(gdpr|privacy|secur\w*|data (is )?stored|where is my data|hosting)\b", re.I),
        "send the data-protection summary",
    ),
    Topic(
        "seats",
        "team size",
        re.compile(r"\b(how many users|users|seats?|licen[cs]es?)\b", re.I),
        "confirm their team size and quote per seat",
    ),
)
DECISION_MAKER = re.compile(
    r"\b(owner|founder|ceo|cfo|coo|cto|managing director|director|head|vp|president)\b", re.I
)


@dataclass(frozen=True)
class Touch:
    """One interaction as the rules see it (kind is the InteractionKind slug)."""

    kind: str
    occurred_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
    sentiment: float | None = None


@dataclass(frozen=True)
class LeadFacts:
    status: str = "new"
    is_owned: bool = False
    live_now: bool = False
    timezone: str = ""
    job_title: str = ""
    phone: str = ""
    email: str = ""
    lost_reason: str = ""
    ml_probability: float | None = None
    touches: Sequence[Touch] = ()  # any order; the rules sort
    overdue_follow_ups: int = 0
    due_today_follow_ups: int = 0


@dataclass(frozen=True)
class Suggestion:
    text: str
    because: str
    tone: str = "info"  # info | good | warning


@dataclass(frozen=True)
class Advice:
    next_step: Suggestion
    talking_points: list[Suggestion]


@dataclass(frozen=True)
class Interests:
    """What the lead showed interest in: chat topics, pages, downloads (counts, most first)."""

    chat_topics: list[tuple[str, int]]
    pages: list[tuple[str, int]]
    downloads: list[str]


def _visitor_chat(touches: Sequence[Touch]) -> list[Touch]:
    # Messages the visitor wrote; the bot's and agents' replies don't reveal the visitor's interests.
    return [
        t
        for t in touches
        if t.kind == "chat_message" and str(t.payload.get("from", "visitor")) in ("visitor", "lead", "")
    ]


def topic_counts(touches: Sequence[Touch]) -> Counter[str]:
    """How many of the visitor's chat messages mention each topic."""
    counts: Counter[str] = Counter()
    for touch in _visitor_chat(touches):
        text = str(touch.payload.get("text", ""))
        for topic in TOPICS:
            if topic.pattern.search(text):
                counts[topic.slug] += 1
    return counts


def last_conversation(touches: Sequence[Touch]) -> list[Touch]:
    """The visitor's messages of their most recent chat (messages less than an hour apart)."""
    messages = sorted(_visitor_chat(touches), key=lambda t: t.occurred_at, reverse=True)
    conversation: list[Touch] = []
    for touch in messages:
        if conversation and conversation[-1].occurred_at - touch.occurred_at > CONVERSATION_GAP:
            break
        conversation.append(touch)
    return conversation


def mean_sentiment(touches: Sequence[Touch]) -> float | None:
    scores = [t.sentiment for t in touches if t.sentiment is not None]
    return sum(scores) / len(scores) if scores else None


def interests(touches: Sequence[Touch]) -> Interests:
    """Chat topics, most-viewed pages and downloaded content, from the interactions alone."""
    labels = {topic.slug: topic.label for topic in TOPICS}
    pages = Counter(str(t.payload["url"]) for t in touches if t.kind == "page_view" and t.payload.get("url"))
    downloads: list[str] = []
    for touch in sorted(touches, key=lambda t: t.occurred_at, reverse=True):
        title = touch.payload.get("title") or touch.payload.get("url")
        if touch.kind == "content_download" and title and str(title) not in downloads:
            downloads.append(str(title))
    return Interests(
        chat_topics=[(labels[slug], n) for slug, n in topic_counts(touches).most_common()],
        pages=pages.most_common(5),
        downloads=downloads[:5],
    )


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def local_time(tz_name: str, now: datetime) -> datetime | None:
    if not tz_name:
        return None
    try:
        return now.astimezone(zoneinfo.ZoneInfo(tz_name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def talking_points(facts: LeadFacts, *, now: datetime) -> list[Suggestion]:
    """Short, evidence-backed things worth saying or knowing, most useful first."""
    touches = facts.touches
    points: list[Suggestion] = []

    conversation = last_conversation(touches)
    mood = mean_sentiment(conversation)
    if mood is not None and mood <= FRUSTRATED_BELOW:
        points.append(
            Suggestion(
                "Frustrated in last chat — acknowledge that first.",
                f"Average sentiment {mood:+.2f} over their last {len(conversation)} chat message(s).",
                "warning",
            )
        )
    elif mood is not None and mood >= HAPPY_ABOVE:
        points.append(
            Suggestion(
                "Upbeat in last chat — a good moment to propose the next step.",
                f"Average sentiment {mood:+.2f} over their last {len(conversation)} chat message(s).",
                "good",
            )
        )

    counts = topic_counts(touches)
    for topic in TOPICS:
        n = counts.get(topic.slug, 0)
        if n:
            points.append(
                Suggestion(
                    f"Asked about {topic.label} {_times(n)} in chat — {topic.advice}.",
                    f"{n} chat message(s) mention {topic.label}.",
                )
            )

    pricing_views = [
        t
        for t in touches
        if t.kind == "page_view"
        and "pricing" in str(t.payload.get("url", ""))
        and now - t.occurred_at <= RECENT
    ]
    if len(pricing_views) >= 2 and not counts.get("pricing"):
        points.append(
            Suggestion(
                f"Viewed the pricing page {_times(len(pricing_views))} in two weeks — "
                "offer the annual plan comparison.",
                "Page views of /pricing in the last 14 days.",
            )
        )

    for title in interests(touches).downloads[:2]:
        points.append(
            Suggestion(f"Downloaded “{title}” — refer to it.", "A content download on their timeline.")
        )
    case_studies = sorted(
        {
            str(t.payload["url"]).rstrip("/").rsplit("/", 1)[-1]
            for t in touches
            if t.kind == "page_view" and "case-stud" in str(t.payload.get("url", ""))
        }
    )
    if case_studies:
        points.append(
            Suggestion(
                f"Read the {', '.join(case_studies)} case stud{'ies' if len(case_studies) > 1 else 'y'} — "
                "bring up a similar customer.",
                "Page views under /case-studies/.",
            )
        )

    replies = sorted((t for t in touches if t.kind == "email_reply"), key=lambda t: t.occurred_at)
    if replies and now - replies[-1].occurred_at <= RECENT:
        subject = replies[-1].payload.get("subject") or "an email"
        points.append(
            Suggestion(f"Replied to “{subject}” — answer in that thread.", "A recent email reply.", "good")
        )
    tickets = [t for t in touches if t.kind == "support_ticket"]
    if tickets:
        subject = max(tickets, key=lambda t: t.occurred_at).payload.get("subject") or "a question"
        points.append(
            Suggestion(
                f"Has a support question (“{subject}”) — make sure it was answered.",
                "A support ticket on their timeline.",
                "warning",
            )
        )
    if any(t.kind == "unsubscribe" for t in touches):
        points.append(
            Suggestion(
                "Unsubscribed from emails — call or chat instead of mailing.",
                "An unsubscribe event.",
                "warning",
            )
        )
    if any(t.kind == "email_bounce" for t in touches):
        points.append(Suggestion("Email bounced — check the address.", "A bounced email.", "warning"))
    if facts.job_title and DECISION_MAKER.search(facts.job_title):
        points.append(
            Suggestion(
                f"Decision maker ({facts.job_title}) — talk outcomes and return on investment.",
                "Job title.",
            )
        )
    local = local_time(facts.timezone, now)
    if local is not None:
        open_hours = BUSINESS_HOURS[0] <= local.hour < BUSINESS_HOURS[1] and local.weekday() < 5
        points.append(
            Suggestion(
                f"It is {local:%H:%M} on {local:%A} for them ({facts.timezone})"
                + (" — a fine time to call." if open_hours else " — outside business hours; write instead."),
                "Their time zone.",
                "info" if open_hours else "warning",
            )
        )
    return points


def next_step(facts: LeadFacts, *, now: datetime) -> Suggestion:
    """The one thing to do next; the first rule that applies wins (the order is the policy)."""
    touches = facts.touches
    kinds = Counter(t.kind for t in touches)
    counts = topic_counts(touches)
    conversation = last_conversation(touches)
    mood = mean_sentiment(conversation)
    latest = max((t.occurred_at for t in touches), default=None)
    unsubscribed = kinds.get("unsubscribe", 0) > 0
    can_call = bool(facts.phone)

    if facts.status == "won":
        return Suggestion("Hand over to onboarding and ask for a referral.", "The lead is won.", "good")
    if facts.status == "lost":
        reason = f" ({facts.lost_reason})" if facts.lost_reason else ""
        return Suggestion("Set a follow-up to check back in three months.", f"The lead was lost{reason}.")
    if facts.status == "disqualified":
        return Suggestion("No action needed.", "The lead is disqualified.")
    if facts.live_now:
        return Suggestion("Join the live chat now.", "They are on the website chatting right now.", "good")
    if facts.overdue_follow_ups:
        return Suggestion(
            "Do the overdue follow-up first.",
            f"{facts.overdue_follow_ups} follow-up(s) are past their due time.",
            "warning",
        )
    if mood is not None and mood <= FRUSTRATED_BELOW:
        action = "Call" if can_call else "Write"
        return Suggestion(
            f"{action} to acknowledge the frustration before selling anything.",
            f"Their last chat averaged sentiment {mood:+.2f}.",
            "warning",
        )
    demo_views = sum(1 for t in touches if t.kind == "page_view" and "/demo" in str(t.payload.get("url", "")))
    if (counts.get("demo") or demo_views) and not kinds.get("meeting"):
        return Suggestion(
            "Book a demo.",
            "They asked for a demo in chat."
            if counts.get("demo")
            else f"Visited the demo page {_times(demo_views)}; no meeting yet.",
        )
    pricing_views = sum(
        1 for t in touches if t.kind == "page_view" and "pricing" in str(t.payload.get("url", ""))
    )
    if counts.get("pricing") or pricing_views >= 2:
        channel = "call" if can_call else "email"
        return Suggestion(
            f"Send the annual plan comparison and offer a short {channel}.",
            "Pricing came up in chat."
            if counts.get("pricing")
            else f"Viewed the pricing page {_times(pricing_views)}.",
        )
    if facts.status == "qualified":
        return Suggestion("Send a proposal.", "The lead is qualified.")
    if facts.status == "new" and not kinds.get("call") and not kinds.get("meeting"):
        if can_call:
            return Suggestion(
                "Make a first call.", "New lead, nobody has called yet; a phone number is on file."
            )
        if facts.email and not unsubscribed and not kinds.get("email_sent"):
            return Suggestion(
                "Send a short personal intro email.", "New lead with an email address, no contact yet."
            )
    if latest is not None and now - latest > QUIET_AFTER:
        return Suggestion(
            "Re-engage with something new (a case study or product update).",
            f"No activity for {(now - latest).days} days.",
        )
    if facts.ml_probability is not None and facts.ml_probability >= 0.5:
        return Suggestion(
            "Ask for the decision: propose next steps and a timeline.",
            f"The model puts their chance of buying at {facts.ml_probability:.0%}.",
            "good",
        )
    if unsubscribed:
        return Suggestion("Check in by phone.", "They unsubscribed from emails.")
    return Suggestion("Check in with something useful to them.", "No stronger signal on file.")


def advise(facts: LeadFacts, *, now: datetime) -> Advice:
    """Next step plus talking points for one lead."""
    return Advice(next_step=next_step(facts, now=now), talking_points=talking_points(facts, now=now))
