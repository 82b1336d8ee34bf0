"""Columns of a file → lead fields: suggestions from the headers, and each cell's text as a typed value.

A target is a lead field an import may set (`leadcrm.services.IMPORT_FIELDS`), `owner`, an outcome
column (`outcome`, `outcome_date`, `lost_reason`), `custom:NAME` for a custom attribute, or "" to
ignore the column. Conversion problems refuse the row with the column named; the services check
the values themselves with create_lead's rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any

from django.utils import timezone

from leadcrm.models import Lead, LeadSource, RevenueBand
from leadcrm.services import IMPORT_FIELDS, ImportRow

CUSTOM = "custom:"
OUTCOME_TARGETS = ("outcome", "outcome_date", "lost_reason")
BOOL_FIELDS = frozenset({"marketing_consent", "contact_consent"})
INT_FIELDS = frozenset({"employee_count"})
DATE_FIELDS = frozenset({"created_at", "outcome_date"})
TRUE_WORDS = frozenset(
    {"yes", "y", "true", "t", "1", "x", "ja", "oui", "si", "sí", "✓", "opted in", "opt-in"}
)
FALSE_WORDS = frozenset({"no", "n", "false", "f", "0", "nein", "non", "opted out", "opt-out", "-"})
WON_WORDS = frozenset({"won", "win", "closed won", "closed-won", "closed_won", "customer", "converted"})
LOST_WORDS = frozenset({"lost", "loss", "closed lost", "closed-lost", "closed_lost"})
# Still open: no outcome to import (a "status" or "stage" column holds these too).
OPEN_WORDS = frozenset(
    {
        "open",
        "new",
        "working",
        "qualified",
        "in progress",
        "contacted",
        "lead",
        "prospect",
        "pending",
        "active",
    }
)

# Header (normalised: lower case, words joined by _) → target. Unknown headers become custom attributes.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "email": ("email", "e_mail", "email_address", "mail", "work_email", "business_email"),
    "first_name": ("first_name", "firstname", "first", "given_name", "forename", "vorname", "prenom"),
    "last_name": ("last_name", "lastname", "last", "surname", "family_name", "nachname", "nom"),
    "phone": ("phone", "phone_number", "telephone", "tel", "mobile", "mobile_phone", "cell"),
    "company_name": (
        "company",
        "company_name",
        "organisation",
        "organization",
        "account",
        "account_name",
        "firma",
        "business",
    ),
    "industry": ("industry", "sector", "vertical"),
    "employee_count": (
        "employees",
        "employee_count",
        "number_of_employees",
        "num_employees",
        "headcount",
        "company_size",
        "staff",
    ),
    "annual_revenue_band": ("annual_revenue_band", "revenue_band", "revenue", "annual_revenue"),
    "job_title": ("job_title", "title", "position", "role", "job"),
    "country": ("country", "country_code", "land"),
    "city": ("city", "town", "ort", "stadt"),
    "timezone": ("timezone", "time_zone", "tz"),
    "preferred_language": ("preferred_language", "language", "lang", "locale"),
    "source": ("source", "lead_source", "channel"),
    "utm_source": ("utm_source",),
    "utm_medium": ("utm_medium",),
    "utm_campaign": ("utm_campaign", "campaign"),
    "utm_term": ("utm_term",),
    "utm_content": ("utm_content",),
    "marketing_consent": (
        "marketing_consent",
        "newsletter",
        "opt_in",
        "marketing_opt_in",
        "subscribed",
        "email_opt_in",
    ),
    "contact_consent": ("contact_consent", "contact_ok", "may_contact", "contact_opt_in"),
    "created_at": ("created_at", "created", "created_date", "date_created", "signup_date", "first_seen"),
    "owner": ("owner", "lead_owner", "assigned_to", "sales_rep", "salesperson", "account_owner"),
    "outcome": ("outcome", "result", "won_lost", "deal_status", "deal_outcome", "stage", "status"),
    "outcome_date": (
        "outcome_date",
        "closed_at",
        "close_date",
        "closed_date",
        "closed",
        "won_date",
        "lost_date",
        "date_closed",
    ),
    "lost_reason": ("lost_reason", "reason_lost", "loss_reason", "reason"),
}
BY_HEADER = {alias: target for target, aliases in SYNONYMS.items() for alias in aliases}


def normalise(header: str) -> str:
    return "_".join(re.findall(r"[0-9a-z]+", header.lower().replace("-", " ")))


def target_choices(*, outcomes: bool = True) -> list[tuple[str, str]]:
    """The targets a column may map to, labelled for the mapping form ("" ignores the column)."""
    labels = {f.name: str(f.verbose_name).capitalize() for f in Lead._meta.concrete_fields}
    fields = sorted(IMPORT_FIELDS - {"owner_id"}, key=lambda n: labels.get(n, n))
    choices = [("", "— ignore this column —"), *((n, f"{labels[n]} ({n})") for n in fields)]
    choices.append(("owner", "Owner (username or email of a user)"))
    if outcomes:
        choices += [
            ("outcome", "Outcome: won or lost"),
            ("outcome_date", "Outcome date (when it was won or lost)"),
            ("lost_reason", "Lost reason"),
        ]
    return choices


def custom_target(header: str) -> str:
    return CUSTOM + (normalise(header) or "column")[:60]


def suggest(headers: Sequence[str], *, outcomes: bool = True) -> list[str]:
    """One target per column: a known field by its usual names, else a custom attribute."""
    taken: set[str] = set()
    targets = []
    for header in headers:
        target = BY_HEADER.get(normalise(header), "")
        if target in OUTCOME_TARGETS and not outcomes:
            target = ""
        if not target or target in taken:
            target = custom_target(header)
        taken.add(target)
        targets.append(target)
    return targets


def check_mapping(mapping: Sequence[str], *, outcomes: bool) -> list[str]:
    """What is wrong with a mapping (empty: nothing)."""
    problems = []
    valid = {value for value, _ in target_choices(outcomes=outcomes)}
    seen: set[str] = set()
    for target in mapping:
        if target.startswith(CUSTOM):
            name = target[len(CUSTOM) :]
            if not re.fullmatch(r"[0-9a-z_]{1,60}", name):
                problems.append(f"“{name}”: a custom attribute name uses lower-case letters, digits and _.")
        elif target not in valid:
            problems.append(f"“{target}” is not a field an import can fill.")
        if target and target in seen:
            problems.append(f"Two columns map to “{target}”; choose one and ignore the other.")
        seen.add(target)
    if outcomes and ("outcome" in seen) != ("outcome_date" in seen):
        problems.append("To import outcomes, map both an outcome column (won/lost) and its date.")
    if not any(mapping):
        problems.append("Map at least one column.")
    return problems


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError("use yes or no")


def _int(text: str) -> int:
    value = re.sub(r"[\s,'_]", "", text.strip())
    if value.endswith(".0"):
        value = value[:-2]
    try:
        return int(value)
    except ValueError:
        raise ValueError("use a whole number, e.g. 120") from None


DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%d.%m.%Y",
    "%Y/%m/%d",
)


def _datetime(text: str) -> datetime:
    value = text.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        for fmt in DATE_FORMATS:
            try:
                parsed = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError("use a date like 2026-03-31 (or 31.03.2026)") from None
    if isinstance(parsed, date) and not isinstance(parsed, datetime):
        parsed = datetime.combine(parsed, time(12))
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    return parsed


def _choice_map(choices: Sequence[tuple[str, str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, label in choices:
        for spelling in (key.lower(), str(label).lower(), normalise(str(label))):
            found.setdefault(spelling, key)
    return found


SOURCE_WORDS = _choice_map(LeadSource.choices)
REVENUE_WORDS = _choice_map(RevenueBand.choices)


def _choice(text: str, words: dict[str, str]) -> str:
    value = text.strip().lower()
    if value in words:
        return words[value]
    raise ValueError(f"use one of {', '.join(sorted(set(words.values())))}")


def _custom_value(text: str) -> Any:
    """Whole numbers and decimals become numbers (rules compare them); codes with a leading 0 stay text."""
    value = text.strip()
    if re.fullmatch(r"-?(0|[1-9]\d{0,14})", value):
        return int(value)
    if re.fullmatch(r"-?(0|[1-9]\d{0,14})\.\d+", value):
        return float(value)
    return value


def convert(value: str, target: str) -> Any:
    """A cell's text as the value the target takes; ValueError says what to write instead."""
    if target in BOOL_FIELDS:
        return _bool(value)
    if target in INT_FIELDS:
        return _int(value)
    if target in DATE_FIELDS:
        return _datetime(value)
    if target == "source":
        return _choice(value, SOURCE_WORDS)
    if target == "annual_revenue_band":
        return _choice(value, REVENUE_WORDS)
    if target == "outcome":
        word = value.strip().lower()
        if word in WON_WORDS:
            return "won"
        if word in LOST_WORDS:
            return "lost"
        if word in OPEN_WORDS:
            return ""
        raise ValueError("use won or lost (or open, or leave it empty, for leads still open)")
    if target.startswith(CUSTOM):
        return _custom_value(value)
    return value.strip()


def to_import_row(
    line: int, cells: Sequence[str], headers: Sequence[str], mapping: Sequence[str]
) -> ImportRow:
    """A file row as the services' ImportRow; a cell that does not convert refuses the row, saying which."""
    row = ImportRow(line=line, fields={}, custom={})
    if len(cells) > len(headers) and any(c.strip() for c in cells[len(headers) :]):
        row.problem = f"The row has {len(cells)} values but the header names {len(headers)} columns; check for a stray separator."
        return row
    problems = []
    for header, target, text in zip(headers, mapping, cells, strict=False):
        if not target or not text.strip():
            continue
        try:
            value = convert(text, target)
        except ValueError as exc:
            problems.append(f"{header}: {exc}.")
            continue
        if target.startswith(CUSTOM):
            assert row.custom is not None
            row.custom[target[len(CUSTOM) :]] = value
        elif target == "owner":
            row.owner = value
        elif target == "outcome":
            row.outcome = value
        elif target == "outcome_date":
            row.outcome_at = value
        elif target == "lost_reason":
            row.lost_reason = value
        else:
            row.fields[target] = value
    if row.outcome_at is not None and not row.outcome:
        row.outcome_at = None  # a date without an outcome: the lead is still open
    row.problem = " ".join(problems)
    return row
