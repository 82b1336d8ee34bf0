"""Suggested next step and talking points for one lead, from the business's playbook. Pure: no ORM, no I/O.

The lead context page gathers a `LeadFacts` (recent interactions, status, follow-ups…) and asks
`advise(facts, now=…, rules=…)` with the playbook's rules (`leadcrm.playbook`). Every suggestion
carries the evidence it was derived from (`because`), so a salesperson can see *why* the page says
"offer a free cake tasting" ("Viewed /wedding-cakes 3 times in the last 14 days") and judge it.
A few lines do not depend on the playbook: a frustrated visitor (always the first line), a live chat,
overdue follow-ups, support tickets, unsubscribes, bounces and the lead's local time.
"""

from __future__ import annotations

import zoneinfo
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from leadcrm.playbook_rules import DEFAULTS, Rule, alternatives, path_matches, words_pattern

FRUSTRATED_BELOW = -0.3  # average sentiment of the last chat at or below this reads as frustrated
HAPPY_ABOVE = 0.4
# The chat bot's own rule (chatbot.bot.NEGATIVE_SENTIMENT, the site's default hand-off count): this
# many messages at or below that score in one chat read as frustrated even if others were neutral.
NEGATIVE_MESSAGE = -0.35
NEGATIVE_FOR_HANDOFF = 2
CONVERSATION_GAP = timedelta(hours=1)  # chat messages further apart start a new conversation
QUIET_AFTER = timedelta(days=30)
RECENT = timedelta(days=14)
BUSINESS_HOURS = (9, 18)  # local time at the lead, for "good time to call"


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
    grade: str = ""
    interests: Sequence[str] = ()  # what they told the chat they are interested in (lead.custom)


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


def interests(touches: Sequence[Touch], rules: Sequence[Rule] = ()) -> Interests:
    """Chat topics (the playbook's chat rules, named by their first word), most-viewed page paths
    and downloaded content, from the interactions alone."""
    texts = [str(t.payload.get("text", "")) for t in _visitor_chat(touches)]
    topics: Counter[str] = Counter()
    for rule in rules:
        words = alternatives(rule.match)
        if rule.signal == "chat" and words and words[0] not in topics:
            n = sum(1 for text in texts if words_pattern(rule.match).search(text))
            if n:
                topics[words[0]] = n
    pages = Counter(
        _path(str(t.payload["url"])) for t in touches if t.kind == "page_view" and t.payload.get("url")
    )
    downloads: list[str] = []
    for touch in sorted(touches, key=lambda t: t.occurred_at, reverse=True):
        title = touch.payload.get("title") or touch.payload.get("url")
        if touch.kind == "content_download" and title and str(title) not in downloads:
            downloads.append(str(title))
    return Interests(chat_topics=topics.most_common(), pages=pages.most_common(5), downloads=downloads[:5])


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def local_time(tz_name: str, now: datetime) -> datetime | None:
    if not tz_name:
        return None
    try:
        return now.astimezone(zoneinfo.ZoneInfo(tz_name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def is_frustrated(touches: Sequence[Touch]) -> str:
    """Evidence that the visitor was frustrated in their last chat ('' when not).

    Either the average sentiment of their last conversation is low, or it had as many clearly
    negative messages as make the bot hand the chat to a person (a hand-off for frustration).
    """
    conversation = last_conversation(touches)
    mood = mean_sentiment(conversation)
    negative = sum(1 for t in conversation if t.sentiment is not None and t.sentiment <= NEGATIVE_MESSAGE)
    if negative >= NEGATIVE_FOR_HANDOFF:
        return f"{negative} negative messages in their last chat (the bot hands such chats to a person)."
    if mood is not None and mood <= FRUSTRATED_BELOW:
        return f"Average sentiment {mood:+.2f} over their last {len(conversation)} chat message(s)."
    return ""


def _is_upbeat(touches: Sequence[Touch]) -> str:
    conversation = last_conversation(touches)
    mood = mean_sentiment(conversation)
    if mood is not None and mood >= HAPPY_ABOVE:
        return f"Average sentiment {mood:+.2f} over their last {len(conversation)} chat message(s)."
    return ""


def _path(url: str) -> str:
    return url if url.startswith("/") else urlsplit(url).path


def _quote(words: Sequence[str]) -> str:
    return ", ".join(f"“{w}”" for w in words)


@dataclass
class _Seen:
    """What the rules look at, gathered once per lead (one pass over the touches)."""

    facts: LeadFacts
    now: datetime
    recent_pages: Counter[str]
    visitor_texts: list[str]
    downloads: list[str]
    latest: datetime | None
    kinds: Counter[str]
    frustrated: str
    upbeat: str

    @classmethod
    def of(cls, facts: LeadFacts, now: datetime) -> _Seen:
        touches = facts.touches
        pages: Counter[str] = Counter(
            _path(str(t.payload["url"]))
            for t in touches
            if t.kind == "page_view" and t.payload.get("url") and now - t.occurred_at <= RECENT
        )
        return cls(
            facts=facts,
            now=now,
            recent_pages=pages,
            visitor_texts=[str(t.payload.get("text", "")) for t in _visitor_chat(touches)],
            downloads=interests(touches).downloads,
            latest=max((t.occurred_at for t in touches), default=None),
            kinds=Counter(t.kind for t in touches),
            frustrated=is_frustrated(touches),
            upbeat=_is_upbeat(touches),
        )


def _evidence(rule: Rule, seen: _Seen) -> str:
    """Why `rule` fires for this lead ('' when it does not): what the salesperson can check."""
    facts, signal, match = seen.facts, rule.signal, rule.match
    if signal == "page":
        hits = [(p, n) for p, n in seen.recent_pages.most_common() if path_matches(p, match)]
        if not hits:
            return ""
        return "Viewed " + "; ".join(f"{p} {_times(n)}" for p, n in hits[:2]) + " in the last 14 days."
    if signal == "chat":
        pattern = words_pattern(match)
        found = [m.group(0).lower() for text in seen.visitor_texts if (m := pattern.search(text))]
        if not found:
            return ""
        return f"Wrote {_quote(sorted(set(found))[:3])} in chat ({len(found)} message{'s' if len(found) > 1 else ''})."
    if signal == "interest":
        pattern = words_pattern(match)
        said = [i for i in facts.interests if pattern.search(i)]
        return f"Told the chat they are interested in {', '.join(said)}." if said else ""
    if signal == "download":
        titles = [d for d in seen.downloads if not match.strip() or words_pattern(match).search(d)]
        return f"Downloaded {_quote(titles[:2])}." if titles else ""
    if signal == "job_title":
        return (
            f"Job title: {facts.job_title}."
            if facts.job_title and words_pattern(match).search(facts.job_title)
            else ""
        )
    if signal == "status":
        wanted = {p.lower() for p in alternatives(match)}
        if facts.status not in wanted:
            return ""
        reason = f" ({facts.lost_reason})" if facts.status == "lost" and facts.lost_reason else ""
        return f"The lead is {facts.status}{reason}."
    if signal == "grade":
        grade = facts.grade.upper()
        return (
            f"Grade {grade}."
            if grade and any(grade.startswith(p.upper()) for p in alternatives(match))
            else ""
        )
    if signal == "probability":
        p = facts.ml_probability
        threshold = int(match.strip() or 0) / 100 if match.strip().isdigit() else 2.0
        return (
            f"The model puts their chance of buying at {p:.0%}." if p is not None and p >= threshold else ""
        )
    if signal == "frustrated":
        return seen.frustrated
    if signal == "upbeat":
        return seen.upbeat
    if signal == "overdue":
        n = facts.overdue_follow_ups
        return f"{n} follow-up(s) past their due time." if n else ""
    if signal == "email_reply":
        replies = sorted((t for t in facts.touches if t.kind == "email_reply"), key=lambda t: t.occurred_at)
        if replies and seen.now - replies[-1].occurred_at <= RECENT:
            subject = replies[-1].payload.get("subject") or "an email"
            return f"Replied to “{subject}”."
        return ""
    if signal == "new_lead":
        touched = seen.kinds.get("call") or seen.kinds.get("meeting") or seen.kinds.get("email_sent")
        return (
            "New lead; nobody has called, met or written yet."
            if facts.status == "new" and not touched
            else ""
        )
    if signal == "quiet":
        if seen.latest is not None and seen.now - seen.latest > QUIET_AFTER:
            return f"No activity for {(seen.now - seen.latest).days} days."
        return ""
    return ""


def _fired(rules: Sequence[Rule], seen: _Seen) -> list[tuple[Rule, str]]:
    return [(rule, why) for rule in rules if (why := _evidence(rule, seen))]


_TONES = {"frustrated": "warning", "overdue": "warning", "upbeat": "good", "email_reply": "good"}


def _talking_points(facts: LeadFacts, seen: _Seen, fired: Sequence[tuple[Rule, str]]) -> list[Suggestion]:
    touches = facts.touches
    points: list[Suggestion] = []
    if seen.frustrated:  # always first, whatever the playbook says
        points.append(
            Suggestion("Frustrated in last chat — acknowledge that first.", seen.frustrated, "warning")
        )
    shown: set[str] = set()
    for rule, why in fired:
        text = rule.talking_point.strip()
        if text and text not in shown and rule.signal != "frustrated":
            shown.add(text)
            points.append(Suggestion(text, why, _TONES.get(rule.signal, "info")))

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
    if seen.kinds.get("unsubscribe"):
        points.append(
            Suggestion(
                "Unsubscribed from emails — call or chat instead of mailing.",
                "An unsubscribe event.",
                "warning",
            )
        )
    if seen.kinds.get("email_bounce"):
        points.append(Suggestion("Email bounced — check the address.", "A bounced email.", "warning"))
    local = local_time(facts.timezone, seen.now)
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


def _next_step(facts: LeadFacts, seen: _Seen, fired: Sequence[tuple[Rule, str]]) -> Suggestion:
    """The one thing to do next: a closed lead's status rule, then live chat, overdue work and
    frustration, then the first playbook rule with a next step (the order is the policy)."""
    steps = [(rule, why) for rule, why in fired if rule.next_step.strip()]
    can_call = bool(facts.phone)
    if facts.status in ("won", "lost", "disqualified"):
        for rule, why in steps:
            if rule.signal == "status":
                return Suggestion(rule.next_step, why, "good" if facts.status == "won" else "info")
        reason = f" ({facts.lost_reason})" if facts.status == "lost" and facts.lost_reason else ""
        return Suggestion("No action needed.", f"The lead is {facts.status}{reason}.")
    if facts.live_now:
        return Suggestion("Join the live chat now.", "They are on the website chatting right now.", "good")
    if facts.overdue_follow_ups:
        return Suggestion(
            "Do the overdue follow-up first.",
            f"{facts.overdue_follow_ups} follow-up(s) are past their due time.",
            "warning",
        )
    if seen.frustrated:
        action = "Call" if can_call else "Write"
        return Suggestion(
            f"{action} to acknowledge the frustration before anything else.", seen.frustrated, "warning"
        )
    if steps:
        rule, why = steps[0]
        return Suggestion(rule.next_step, why, _TONES.get(rule.signal, "info"))
    unsubscribed = bool(seen.kinds.get("unsubscribe"))
    if facts.status == "new" and not seen.kinds.get("call") and not seen.kinds.get("meeting"):
        if can_call:
            return Suggestion(
                "Make a first call.", "New lead, nobody has called yet; a phone number is on file."
            )
        if facts.email and not unsubscribed and not seen.kinds.get("email_sent"):
            return Suggestion(
                "Send a short personal intro email.", "New lead with an email address, no contact yet."
            )
    if unsubscribed:
        return Suggestion("Check in by phone.", "They unsubscribed from emails.")
    return Suggestion("Check in with something useful to them.", "No stronger signal on file.")


def talking_points(
    facts: LeadFacts, *, now: datetime, rules: Sequence[Rule] | None = None
) -> list[Suggestion]:
    """Short, evidence-backed things worth saying or knowing, most useful first."""
    rules = DEFAULTS["software"] if rules is None else rules
    seen = _Seen.of(facts, now)
    return _talking_points(facts, seen, _fired(rules, seen))


def next_step(facts: LeadFacts, *, now: datetime, rules: Sequence[Rule] | None = None) -> Suggestion:
    """The one thing to do next."""
    rules = DEFAULTS["software"] if rules is None else rules
    seen = _Seen.of(facts, now)
    return _next_step(facts, seen, _fired(rules, seen))


def advise(facts: LeadFacts, *, now: datetime, rules: Sequence[Rule] | None = None) -> Advice:
    """Next step plus talking points for one lead, by the playbook's `rules` (in their order).

    Without `rules`, the B2B software defaults (what this module did before playbooks).
    """
    rules = DEFAULTS["software"] if rules is None else rules
    seen = _Seen.of(facts, now)
    fired = _fired(rules, seen)
    return Advice(
        next_step=_next_step(facts, seen, fired), talking_points=_talking_points(facts, seen, fired)
    )
