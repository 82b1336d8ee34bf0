"""What a playbook rule can react to, how its `match` is checked, and the default playbooks.

Pure: no ORM. A rule is a signal (a page path, words in chat, a stated interest, the status…),
an optional `match`, and what to do when it fires: a talking point and/or a next step, in the
business's own words. `leadcrm.talking_points` evaluates the rules against one lead's facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

# The signals, in the order the playbook page offers them.
SIGNAL_CHOICES: list[tuple[str, str]] = [
    ("page", "Viewed a page (its path ends with…)"),
    ("chat", "Wrote in chat (words)"),
    ("interest", "Told the chat an interest (words)"),
    ("download", "Downloaded (title words; blank: anything)"),
    ("job_title", "Job title contains (words)"),
    ("status", "Status is"),
    ("grade", "Grade starts with"),
    ("probability", "Chance of buying at least (%)"),
    ("frustrated", "Frustrated in the last chat"),
    ("upbeat", "Upbeat in the last chat"),
    ("overdue", "A follow-up is overdue"),
    ("email_reply", "Replied to an email (last 14 days)"),
    ("new_lead", "New, nobody in touch yet"),
    ("quiet", "No activity for 30 days"),
]
SIGNALS = frozenset(slug for slug, _ in SIGNAL_CHOICES)
NEEDS_MATCH = frozenset({"page", "chat", "interest", "job_title", "status", "grade", "probability"})
STATUSES = ("new", "working", "qualified", "won", "lost", "disqualified")  # = LeadStatus values
MERGE_FIELDS = ("first_name", "last_name", "company", "agent_name")

_WORD = re.compile(r"^[\w' .&-]+$")
_PATH = re.compile(r"^/[\w./*%~-]*$")
_GRADE = re.compile(r"^[A-Da-d][1-4]?$")
_MERGE = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Rule:
    signal: str
    match: str = ""
    talking_point: str = ""
    next_step: str = ""


def alternatives(match: str) -> list[str]:
    """'wedding cakes, catering' -> ['wedding cakes', 'catering']."""
    return [part.strip() for part in match.split(",") if part.strip()]


def rule_problems(signal: str, match: str, talking_point: str, next_step: str) -> dict[str, str]:
    """Field → what is wrong with a rule (empty when it is fine)."""
    problems: dict[str, str] = {}
    if signal not in SIGNALS:
        problems["signal"] = "Pick one of the signals in the list."
        return problems
    parts = alternatives(match)
    if signal in NEEDS_MATCH and not parts:
        problems["match"] = "This signal needs something to match (see the hint)."
    elif signal == "page" and any(not _PATH.match(p) for p in parts):
        problems["match"] = "Page paths start with / and may end with *, e.g. /wedding-cakes, /menu/*."
    elif signal in ("chat", "interest", "download", "job_title") and any(not _WORD.match(p) for p in parts):
        problems["match"] = "Use words separated by commas, e.g. discount, offer, cheaper."
    elif signal == "status" and any(p.lower() not in STATUSES for p in parts):
        problems["match"] = f"Statuses are: {', '.join(STATUSES)}."
    elif signal == "grade" and any(not _GRADE.match(p) for p in parts):
        problems["match"] = "Grades look like A, B or A1, B2."
    elif signal == "probability" and (
        len(parts) != 1 or not parts[0].isdigit() or not 1 <= int(parts[0]) <= 100
    ):
        problems["match"] = "A whole percentage from 1 to 100, e.g. 50."
    elif signal not in NEEDS_MATCH and signal != "download" and parts:
        problems["match"] = "This signal takes no match: leave it empty."
    if not talking_point.strip() and not next_step.strip():
        problems["talking_point"] = "Write a talking point, a next step, or both."
    return problems


# --- Matching -------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def words_pattern(match: str) -> re.Pattern[str]:
    """Any of the comma-separated words or phrases, at a word start ('discount' finds 'discounts')."""
    phrases = [r"\s+".join(re.escape(w) for w in part.split()) for part in alternatives(match)]
    return re.compile(r"\b(?:" + "|".join(phrases) + r")", re.IGNORECASE)


@lru_cache(maxsize=512)
def _path_patterns(match: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(s for s in p.lower().split("/") if s) for p in alternatives(match))


def path_matches(path: str, match: str) -> bool:
    """Does the page path END with one of the patterns (segment by segment, `*` a wildcard)?

    Ending, not containing: `/demo` matches `/demo/` and `/en/demo`, never a site that itself
    lives under `/chat/demo/site/…` (the bakery was told to "book a demo" for that).
    """
    segments = [s for s in path.lower().split("/") if s]
    for pattern in _path_patterns(match):
        if not pattern:
            if not segments:
                return True
            continue
        if len(segments) >= len(pattern) and all(
            fnmatchcase(seg, pat) for seg, pat in zip(segments[-len(pattern) :], pattern, strict=True)
        ):
            return True
    return False


# --- Merge fields of canned replies ---------------------------------------------------------------


def merge_field_problem(text: str) -> str:
    """Why a canned reply's merge fields are wrong ('' when fine)."""
    unknown = sorted({name for name in _MERGE.findall(text) if name not in MERGE_FIELDS})
    if unknown:
        known = ", ".join("{" + f + "}" for f in MERGE_FIELDS)
        return f"Unknown merge field {', '.join('{' + u + '}' for u in unknown)}. Use {known}."
    if text.count("{") != text.count("}"):
        return "A merge field is not closed: write it like {first_name}."
    return ""


def merge(text: str, values: dict[str, str]) -> str:
    """Fill the merge fields with plain text (no format(): no attribute or index lookups)."""
    return _MERGE.sub(lambda m: values.get(m.group(1), m.group(0)), text)


# --- Default playbooks ----------------------------------------------------------------------------

_R = Rule
_CLOSED = (_R("status", "disqualified", next_step="No action needed."),)

DEFAULTS: dict[str, tuple[Rule, ...]] = {
    "shop": (
        _R("status", "won", next_step="Thank them and ask for a review."),
        _R("status", "lost", next_step="Check back before the next holiday or season."),
        *_CLOSED,
        _R(
            "chat",
            "discount, cheaper, offer, deal, price, prices, cost, expensive",
            "Asked about prices or discounts — mention the loyalty card and this week's offers.",
            "Reply with the price list and this week's offers.",
        ),
        _R(
            "page",
            "/wedding-cakes, /wedding-cakes/*",
            "Looked at wedding cakes — offer a free tasting.",
            "Offer a free cake tasting.",
        ),
        _R(
            "interest",
            "wedding, tasting",
            "Planning a wedding — ask for the date and the number of guests.",
            "Offer a free cake tasting.",
        ),
        _R(
            "chat",
            "catering, party, event, office, guests",
            "Asked about catering — ask for the date, the number of guests and any allergies.",
            "Send a catering quote.",
        ),
        _R(
            "interest",
            "catering, party, event",
            "Interested in catering — suggest a tasting platter for their event.",
            "Send a catering quote.",
        ),
        _R(
            "chat",
            "custom cake, birthday, order",
            "Wants to order — confirm size, flavour, date and pick-up or delivery.",
            "Confirm the order details.",
        ),
        _R(
            "chat",
            "gluten, vegan, allergy, allergies, allergen, nuts, dairy, lactose",
            "Has a dietary need — say what is safe for them today.",
        ),
        _R("chat", "deliver, delivery", "Asked about delivery — confirm the area, cost and time."),
        _R("chat", "open, opening, hours, closed", "Asked about opening hours — invite them to drop by."),
        _R("page", "/menu, /menu/*, /products/*", "Browsed the menu — suggest today's specials."),
        _R("email_reply", "", "Replied by email — answer in that thread."),
        _R("upbeat", "", "Happy in the last chat — a good moment to invite them to order or visit."),
        _R("quiet", "", "", "Invite them back with a seasonal offer."),
    ),
    "services": (
        _R("status", "won", next_step="Kick off the project and ask for a referral."),
        _R("status", "lost", next_step="Check back in three months."),
        *_CLOSED,
        _R(
            "chat",
            "price, pricing, cost, quote, budget, rate, rates, discount",
            "Asked about cost — ask about scope and budget before quoting.",
            "Send a scoped quote.",
        ),
        _R(
            "chat",
            "meeting, call, consultation, meet, appointment",
            "Wants to talk — offer two times for a first consultation.",
            "Book a first consultation.",
        ),
        _R(
            "page",
            "/contact",
            "Visited the contact page — they may be ready to talk.",
            "Book a first consultation.",
        ),
        _R("page", "/services, /services/*", "Looked at your services — ask which problem they want solved."),
        _R(
            "page",
            "/portfolio, /work/*, /case-studies/*",
            "Looked at past work — bring up a similar project.",
        ),
        _R(
            "chat",
            "deadline, urgent, asap, timeline",
            "Has a deadline — confirm dates and your availability.",
        ),
        _R(
            "job_title",
            "owner, founder, ceo, managing director, director, head, partner",
            "Decision maker — talk about outcomes, not hours.",
        ),
        _R("email_reply", "", "Replied by email — answer in that thread."),
        _R("upbeat", "", "Upbeat in the last chat — propose the next step."),
        _R("status", "qualified", next_step="Send a proposal."),
        _R("quiet", "", "", "Share a recent project that fits them."),
    ),
    "software": (
        _R("status", "won", next_step="Hand over to onboarding and ask for a referral."),
        _R("status", "lost", next_step="Set a follow-up to check back in three months."),
        *_CLOSED,
        _R("chat", "demo", "Asked for a demo — propose two demo slots.", "Book a demo."),
        _R("page", "/demo", "Viewed the demo page — offer a demo.", "Book a demo."),
        _R(
            "chat",
            "price, pricing, cost, expensive, cheap, annual plan, discount, budget",
            "Asked about pricing — offer the annual plan comparison.",
            "Send the annual plan comparison and offer a short call.",
        ),
        _R(
            "page",
            "/pricing",
            "Viewed the pricing page — offer the annual plan comparison.",
            "Send the annual plan comparison and offer a short call.",
        ),
        _R(
            "chat",
            "integration, integrate, api, connect, plugin, sync, shop system",
            "Asked about integrations — ask which tools they use and show the integrations page.",
        ),
        _R("chat", "trial, free trial", "Asked about the trial — offer a guided trial setup."),
        _R(
            "chat",
            "gdpr, privacy, security, secure, data stored, where is my data, hosting",
            "Asked about data protection — send the data-protection summary.",
        ),
        _R(
            "chat",
            "seats, users, licence, license",
            "Asked about users — confirm their team size and quote per seat.",
        ),
        _R("page", "/case-studies/*", "Read a case study — bring up a similar customer."),
        _R("download", "", "Downloaded content — refer to it."),
        _R(
            "job_title",
            "owner, founder, ceo, cfo, coo, cto, managing director, director, head, vp, president",
            "Decision maker — talk outcomes and return on investment.",
        ),
        _R("email_reply", "", "Replied to an email — answer in that thread."),
        _R("upbeat", "", "Upbeat in the last chat — a good moment to propose the next step."),
        _R("status", "qualified", next_step="Send a proposal."),
        _R("probability", "50", next_step="Ask for the decision: propose next steps and a timeline."),
        _R("quiet", "", "", "Re-engage with something new (a case study or product update)."),
    ),
}
