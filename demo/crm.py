"""Believable demo data for a small B2B software business, generated from a seed.

Each lead gets a hidden buying intent drawn from who they are (industry, size, seniority, source);
that intent drives both how much they engage (page views, downloads, email clicks, chats…) and
whether the past ones were won or lost. So the scores computed on this data mean something, and a
model trained on the closed leads has real signal to find.

Everything is relative to `now` (rounded to the day), so `--seed` and `--now` make runs identical.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction

from leadcrm import services
from leadcrm.models import (
    DEFAULT_CHANNEL,
    FollowUp,
    Interaction,
    InteractionKind,
    Lead,
    LeadSource,
    LeadStatus,
    RevenueBand,
    Segment,
    SegmentKind,
    SegmentMembership,
)
from leadcrm.permissions import MANAGER_GROUP, SALESPERSON_GROUP

DEMO_EMAIL_DOMAIN_MARK = "demo"  # demo leads' emails are name.n@<company>.demo.example
DEMO_PASSWORD = "demo"
SALES_USERS = ("sales1", "sales2", "sales3")
# On duty from the start, so the demo's "Talk to a person" is live and hand-offs are routed;
# sales3 is off duty (the toggle is in the nav).
ON_DUTY_USERS = ("sales1", "sales2")

FIRST_NAMES = [
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Elijah",
    "Sophia",
    "Lucas",
    "Mia",
    "Mateo",
    "Amelia",
    "Levi",
    "Harper",
    "Ethan",
    "Evelyn",
    "Aiden",
    "Lena",
    "Jonas",
    "Chloe",
    "Felix",
    "Nora",
    "Leon",
    "Zoe",
    "Hugo",
    "Aria",
    "Oskar",
    "Maya",
    "Luca",
    "Ines",
    "Tomas",
    "Sara",
    "Jakob",
    "Ana",
    "Milan",
    "Yara",
    "Kenji",
    "Aiko",
    "Ravi",
    "Priya",
    "Omar",
    "Leila",
    "Diego",
    "Lucia",
    "Marek",
    "Zofia",
    "Femi",
    "Amara",
    "Chen",
    "Wei",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Garcia",
    "Müller",
    "Schmidt",
    "Rossi",
    "Dubois",
    "Novak",
    "Kowalski",
    "Silva",
    "Santos",
    "Kim",
    "Tanaka",
    "Patel",
    "Singh",
    "Khan",
    "Okafor",
    "Mensah",
    "Jensen",
    "Larsen",
    "Nielsen",
    "Virtanen",
    "Horvath",
    "Popescu",
    "Ivanova",
    "Moreau",
    "Fischer",
    "Weber",
    "Wagner",
    "Becker",
    "Costa",
    "Ferreira",
    "Lopez",
    "Martinez",
    "Hernandez",
    "Nguyen",
    "Tran",
    "Cohen",
    "Levy",
    "O'Brien",
    "Murphy",
    "Walsh",
    "Byrne",
    "Hughes",
    "Evans",
]
COMPANY_A = [
    "Blue",
    "North",
    "Bright",
    "Iron",
    "Green",
    "Silver",
    "Swift",
    "Cedar",
    "Harbor",
    "Summit",
    "Maple",
    "Coastal",
    "Urban",
    "Prime",
    "Golden",
    "Red",
]
COMPANY_B = [
    "Fox",
    "Oak",
    "River",
    "Peak",
    "Bridge",
    "Field",
    "Stone",
    "Lane",
    "Works",
    "Labs",
    "Foods",
    "Goods",
    "Craft",
    "Studio",
    "Partners",
    "Systems",
]
COMPANY_SUFFIX = ("Ltd", "GmbH", "Inc", "LLC", "& Co", "Group", "")

# industry: (fit bonus, typical employees)
INDUSTRIES: dict[str, tuple[float, int]] = {
    "Software": (0.6, 80),
    "Retail": (0.5, 40),
    "Manufacturing": (0.3, 150),
    "Healthcare": (0.2, 120),
    "Finance": (0.4, 200),
    "Education": (-0.3, 60),
    "Hospitality": (0.0, 30),
    "Construction": (-0.2, 50),
    "Logistics": (0.2, 90),
    "Marketing agency": (0.5, 20),
    "Non-profit": (-0.6, 15),
}
# title: seniority bonus
TITLES: dict[str, float] = {
    "Owner": 0.8,
    "CEO": 0.7,
    "Managing Director": 0.7,
    "Director of Sales": 0.9,
    "Head of Marketing": 0.8,
    "Operations Director": 0.6,
    "Sales Manager": 0.5,
    "Marketing Manager": 0.4,
    "Office Manager": 0.0,
    "Account Executive": 0.1,
    "Marketing Specialist": -0.1,
    "Consultant": -0.2,
    "Assistant": -0.4,
    "Student": -1.2,
    "Intern": -1.0,
}
# source: (share, intent bonus)
SOURCES: dict[str, tuple[float, float]] = {
    LeadSource.WEB_FORM: (0.18, 0.5),
    LeadSource.CHAT: (0.07, 0.6),
    LeadSource.REFERRAL: (0.08, 1.0),
    LeadSource.EVENT: (0.07, 0.3),
    LeadSource.PAID_ADS: (0.15, -0.1),
    LeadSource.ORGANIC_SEARCH: (0.18, 0.2),
    LeadSource.SOCIAL: (0.09, -0.2),
    LeadSource.EMAIL_CAMPAIGN: (0.08, 0.0),
    LeadSource.PURCHASED_LIST: (0.07, -1.2),
    LeadSource.OTHER: (0.03, 0.0),
}
COUNTRIES = (
    ("US", "New York", "America/New_York"),
    ("US", "Austin", "America/Chicago"),
    ("GB", "London", "Europe/London"),
    ("DE", "Berlin", "Europe/Berlin"),
    ("DE", "Munich", "Europe/Berlin"),
    ("FR", "Lyon", "Europe/Paris"),
    ("NL", "Utrecht", "Europe/Amsterdam"),
    ("ES", "Valencia", "Europe/Madrid"),
    ("CA", "Toronto", "America/Toronto"),
    ("AU", "Melbourne", "Australia/Melbourne"),
    ("IN", "Pune", "Asia/Kolkata"),
    ("BR", "Curitiba", "America/Sao_Paulo"),
)
LANG = {
    "US": "en",
    "GB": "en",
    "CA": "en",
    "AU": "en",
    "IN": "en",
    "DE": "de",
    "FR": "fr",
    "NL": "nl",
    "ES": "es",
    "BR": "pt-BR",
}
PAGES = (
    "/",
    "/features",
    "/pricing",
    "/pricing",
    "/integrations",
    "/case-studies/retail",
    "/case-studies/software",
    "/blog/lead-scoring-101",
    "/blog/crm-for-small-teams",
    "/demo",
    "/contact",
    "/about",
    "/careers",
)
HIGH_INTENT_PAGES = ("/pricing", "/demo", "/contact", "/case-studies/retail", "/integrations")
DOWNLOADS = (
    "Small-business CRM buyer's guide",
    "Retail case study",
    "Pricing comparison sheet",
    "Lead scoring checklist",
    "Onboarding plan template",
)
CAMPAIGNS = (
    "Spring product update",
    "Webinar: scoring leads that buy",
    "Your free trial ends soon",
    "Case study: 3x more demos",
    "Newsletter: November",
)
CHAT_LINES = {
    "pos": (
        "Do you have an annual plan? The pricing looks good.",
        "Can we get a demo next week?",
        "Does it integrate with our shop system?",
        "Great, thanks, that helps a lot!",
    ),
    "neu": ("How many users are included?", "Is there a free trial?", "Where is my data stored?"),
    "neg": (
        "This is too expensive for us.",
        "I waited ages and nobody answered, really annoying.",
        "The signup form keeps failing, frustrating.",
    ),
}
LOST_REASONS = ("Price too high", "Chose a competitor", "No budget this year", "Not a fit", "No response")
SPAM_NAMES = (("asdf", "qwerty"), ("test", "test"), ("jjjjj", "kkkk"), ("xx", "zzzz"))
DISPOSABLE = ("mailinator.com", "10minutemail.com", "guerrillamail.com")


@dataclass
class SeedReport:
    users_created: int = 0
    leads_created: int = 0
    interactions_created: int = 0
    follow_ups_created: int = 0
    segments_created: int = 0
    imported: int = 0
    notes: list[str] = field(default_factory=list)


def ensure_demo_users() -> tuple[User, list[User], int]:
    """The manager and three salespeople, all with password 'demo' (idempotent)."""
    managers = Group.objects.get_or_create(name=MANAGER_GROUP)[0]
    sales = Group.objects.get_or_create(name=SALESPERSON_GROUP)[0]
    created = 0
    people = [("manager", "Morgan", "Reyes", managers, True)] + [
        (name, first, "Demo", sales, False)
        for name, first in zip(SALES_USERS, ("Sam", "Alex", "Jo"), strict=True)
    ]
    users: list[User] = []
    for username, first, last, group, staff in people:
        user, was_created = User.objects.get_or_create(
            username=username,
            defaults={
                "first_name": first,
                "last_name": last,
                "is_staff": staff,
                "email": f"{username}@leadcrm.example",
            },
        )
        if was_created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
            created += 1
        user.groups.add(group)
        if was_created and username in ON_DUTY_USERS:
            services.set_on_duty(user=user, on_duty=True)
        users.append(user)
    return users[0], users[1:], created


def _weighted(rng: random.Random, table: dict[str, tuple[float, Any]]) -> str:
    keys = list(table)
    return rng.choices(keys, weights=[table[k][0] for k in keys])[0]


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth for small lambda; good enough for demo volumes.
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-min(lam, 30)), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def seed_demo_data(*, seed: int = 7, leads: int = 3000, now: datetime, stdout: Any = None) -> SeedReport:
    """Create demo users, leads, interactions, segments and follow-ups; existing demo rows are kept."""
    report = SeedReport()
    rng = random.Random(seed)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    manager, sellers, report.users_created = ensure_demo_users()

    existing = set(
        Lead.objects.filter(email__contains=f".{DEMO_EMAIL_DOMAIN_MARK}.").values_list("email", flat=True)
    )
    plans = [_plan_lead(rng, i, today, now) for i in range(leads)]  # always drawn, so the rng stays in step
    new_plans = [p for p in plans if p["lead"]["email"] not in existing]

    with transaction.atomic():
        lead_rows = []
        for plan in new_plans:
            row = Lead(**plan["lead"])
            if plan["owner_index"] is not None:
                row.owner = sellers[plan["owner_index"]]
            lead_rows.append(row)
        histories = [
            [
                Interaction(
                    kind=kind,
                    channel=DEFAULT_CHANNEL[int(kind)],
                    occurred_at=at,
                    payload=payload,
                    sentiment=sentiment,
                    created_at=at,
                    logged_by=sellers[plan["owner_index"]]
                    if kind in _LOGGED_KINDS and plan["owner_index"] is not None
                    else None,
                )
                for kind, at, payload, sentiment in plan["interactions"]
            ]
            for plan in new_plans
        ]
        _, interaction_count = services.load_history(leads=lead_rows, interactions=histories)
        by_email = {lead.email: lead for lead in lead_rows}
        report.leads_created = len(lead_rows)
        report.interactions_created = interaction_count

        follow_ups = []
        for plan in new_plans:
            lead = by_email[plan["lead"]["email"]]
            if plan["follow_up_days"] is not None and lead.owner_id:
                follow_ups.append(
                    FollowUp(
                        lead=lead,
                        assigned_to_id=lead.owner_id,
                        created_by_id=lead.owner_id,
                        due_at=today + timedelta(days=plan["follow_up_days"], hours=9 + rng.randrange(8)),
                        note=rng.choice(
                            (
                                "Call back about pricing",
                                "Send the retail case study",
                                "Check in after the trial",
                                "Book a demo with their team",
                            )
                        ),
                    )
                )
        FollowUp.objects.bulk_create(follow_ups)
        report.follow_ups_created = len(follow_ups)
        report.segments_created = _ensure_segments(manager)
    return report


_LOGGED_KINDS = {InteractionKind.CALL, InteractionKind.MEETING, InteractionKind.NOTE}


def _plan_lead(rng: random.Random, i: int, today: datetime, now: datetime) -> dict[str, Any]:
    """One lead and its history, drawn from the rng (no database access); nothing after `now`."""
    spam = rng.random() < 0.03
    first, last = rng.choice(SPAM_NAMES) if spam else (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
    industry = rng.choice(list(INDUSTRIES))
    fit_industry, typical = INDUSTRIES[industry]
    title = rng.choice(list(TITLES))
    source = _weighted(rng, SOURCES)
    employees = max(1, int(rng.lognormvariate(math.log(typical), 0.9)))
    size_fit = 0.6 if 20 <= employees <= 500 else (-0.4 if employees < 5 else 0.0)
    country, city, tz = rng.choice(COUNTRIES)
    company = f"{rng.choice(COMPANY_A)} {rng.choice(COMPANY_B)} {rng.choice(COMPANY_SUFFIX)}".strip()
    slug = "".join(ch for ch in company.lower() if ch.isalnum())[:20]
    domain = rng.choice(DISPOSABLE) if spam else f"{slug}.{DEMO_EMAIL_DOMAIN_MARK}.example"
    email = f"{first.lower()}.{last.lower().replace(chr(39), '')}.{i}@{domain}".replace("ü", "ue")
    if spam:
        email = f"{first}{i}.{DEMO_EMAIL_DOMAIN_MARK}.spam@{domain}"

    intent = (
        fit_industry
        + TITLES[title]
        + size_fit
        + SOURCES[source][1]
        + rng.gauss(0, 0.9)
        - (3.0 if spam else 0)
    )
    p_buy = 1 / (1 + math.exp(-(intent - 1.1)))
    age_days = rng.randrange(1, 240)
    created = today - timedelta(days=age_days, hours=rng.randrange(24), minutes=rng.randrange(60))

    closed = age_days > 30 and rng.random() < 0.65
    status, closed_at, lost_reason, qualified_at = LeadStatus.NEW, None, "", None
    if closed:
        won = rng.random() < p_buy
        closed_at = created + timedelta(days=rng.randrange(7, max(8, min(age_days, 90))))
        if won:
            status = LeadStatus.WON
        elif spam or rng.random() < 0.2:
            status = LeadStatus.DISQUALIFIED
        else:
            status, lost_reason = LeadStatus.LOST, rng.choice(LOST_REASONS)
        if won:
            qualified_at = created + (closed_at - created) / 2
    else:
        r = rng.random()
        if r < 0.2 + 0.2 * p_buy:
            status = LeadStatus.WORKING
        elif r < 0.3 + 0.3 * p_buy:
            status, qualified_at = (
                LeadStatus.QUALIFIED,
                created + timedelta(days=rng.randrange(1, age_days + 1)),
            )

    # Engagement follows intent; closed leads' activity stops at the outcome (purchases follow a win).
    end = closed_at or now
    span = max((end - created).total_seconds(), 3600.0)
    engagement = math.exp(0.8 * intent) * (0.3 if spam else 1.0)
    interactions: list[tuple[int, datetime, dict, float | None]] = []

    def at() -> datetime:
        # activity clusters towards the end of the lead's journey (recent = hot)
        return created + timedelta(seconds=span * (rng.random() ** 0.6))

    for _ in range(_poisson(rng, 3 + 4 * engagement)):
        url = (
            rng.choice(HIGH_INTENT_PAGES) if rng.random() < min(0.7, 0.15 * engagement) else rng.choice(PAGES)
        )
        interactions.append(
            (InteractionKind.PAGE_VIEW, at(), {"url": url, "duration_s": rng.randrange(5, 400)}, None)
        )
    for _ in range(_poisson(rng, 0.4 * engagement)):
        interactions.append((InteractionKind.CONTENT_DOWNLOAD, at(), {"title": rng.choice(DOWNLOADS)}, None))
    for _ in range(_poisson(rng, 2.5)):
        subject = rng.choice(CAMPAIGNS)
        t = at()
        interactions.append((InteractionKind.EMAIL_OPEN, t, {"subject": subject}, None))
        if rng.random() < min(0.8, 0.2 * engagement):
            interactions.append(
                (InteractionKind.EMAIL_CLICK, t + timedelta(minutes=3), {"subject": subject}, None)
            )
    if rng.random() < min(0.6, 0.1 * engagement):
        interactions.append(
            (InteractionKind.EMAIL_REPLY, at(), {"subject": "Re: " + rng.choice(CAMPAIGNS)}, None)
        )
    if rng.random() < 0.25:
        kind = rng.choice(
            (
                InteractionKind.SOCIAL_LIKE,
                InteractionKind.SOCIAL_FOLLOW,
                InteractionKind.SOCIAL_SHARE,
                InteractionKind.SOCIAL_COMMENT,
            )
        )
        interactions.append((kind, at(), {"network": rng.choice(("LinkedIn", "Instagram", "X"))}, None))
    if rng.random() < min(0.5, 0.12 * engagement) or source == LeadSource.CHAT:
        mood = "pos" if rng.random() < p_buy else ("neg" if rng.random() < 0.4 else "neu")
        t = at()
        for j in range(rng.randrange(1, 4)):
            text = rng.choice(CHAT_LINES[mood])
            sentiment = {"pos": 0.6, "neu": 0.0, "neg": -0.6}[mood] + rng.uniform(-0.2, 0.2)
            interactions.append(
                (
                    InteractionKind.CHAT_MESSAGE,
                    t + timedelta(minutes=j),
                    {"text": text, "from": "visitor"},
                    max(-1.0, min(1.0, round(sentiment, 3))),
                )
            )
    if status != LeadStatus.NEW and rng.random() < 0.7:
        interactions.append(
            (
                InteractionKind.CALL,
                at(),
                {"duration_s": rng.randrange(60, 1800), "text": "Discovery call"},
                None,
            )
        )
    if rng.random() < 0.35 * p_buy:
        interactions.append((InteractionKind.MEETING, at(), {"text": "Product demo"}, None))
    if rng.random() < 0.06:
        interactions.append(
            (InteractionKind.SUPPORT_TICKET, at(), {"subject": "Question about data import"}, None)
        )
    if rng.random() < 0.08 * (1.5 - min(p_buy, 1)):
        interactions.append((InteractionKind.UNSUBSCRIBE, at(), {}, None))
    if spam or rng.random() < 0.02:
        interactions.append((InteractionKind.EMAIL_BOUNCE, at(), {}, None))
        if spam:
            interactions.append((InteractionKind.CAPTCHA_FAILED, at(), {"url": "/contact"}, None))
    if status == LeadStatus.WON and closed_at is not None:
        purchase_at = min(closed_at + timedelta(days=rng.randrange(0, 5)), today)
        interactions.append(
            (InteractionKind.PURCHASE, purchase_at, {"amount": rng.choice((588, 1188, 2388, 4788))}, None)
        )

    owner_index = None
    if status != LeadStatus.NEW or rng.random() < 0.35:
        owner_index = rng.randrange(len(SALES_USERS))
    # A click minutes after its open, a chat's later lines: never after now, whatever was drawn.
    interactions = [(kind, min(t, now), payload, s) for kind, t, payload, s in interactions]
    last_activity = max((t for _, t, _, _ in interactions), default=None)
    consent_at = created if rng.random() < 0.6 else None
    lead = {
        "first_name": first.title() if not spam else first,
        "last_name": last if not spam else last,
        "email": email.lower(),
        "phone": f"+1 555 {rng.randrange(100, 999)} {rng.randrange(1000, 9999)}"
        if rng.random() < 0.6
        else "",
        "company_name": "" if spam else company,
        "industry": "" if spam else industry,
        "employee_count": None if spam else employees,
        "annual_revenue_band": _revenue_band(employees, rng) if not spam else "",
        "job_title": "" if spam else title,
        "country": country,
        "city": city,
        "timezone": tz,
        "preferred_language": LANG[country],
        "source": source,
        "utm_source": {"paid_ads": "google", "social": "linkedin", "email_campaign": "newsletter"}.get(
            source, ""
        ),
        "utm_medium": {"paid_ads": "cpc", "social": "social", "email_campaign": "email"}.get(source, ""),
        "utm_campaign": "autumn-promo" if source in (LeadSource.PAID_ADS, LeadSource.SOCIAL) else "",
        "status": status,
        "status_changed_at": closed_at or (qualified_at if status == LeadStatus.QUALIFIED else None),
        "qualified_at": qualified_at,
        "closed_at": closed_at,
        "lost_reason": lost_reason,
        "marketing_consent": consent_at is not None,
        "marketing_consent_at": consent_at,
        "contact_consent": consent_at is not None,
        "contact_consent_at": consent_at,
        "custom": {"team_size_plan": rng.choice(("1-5", "6-20", "21-50", "50+"))}
        if rng.random() < 0.5
        else {},
        "created_at": created,
        "last_activity_at": last_activity,
        "rescore_requested_at": None,
    }
    follow_up_days = (
        rng.choice((-2, 0, 0, 1, 3, 7)) if status in (LeadStatus.WORKING, LeadStatus.QUALIFIED) else None
    )
    return {
        "lead": lead,
        "owner_index": owner_index,
        "interactions": interactions,
        "follow_up_days": follow_up_days,
    }


def _revenue_band(employees: int, rng: random.Random) -> str:
    revenue = employees * rng.uniform(80_000, 250_000)
    for limit, band in (
        (1e6, RevenueBand.UNDER_1M),
        (1e7, RevenueBand.FROM_1M_TO_10M),
        (5e7, RevenueBand.FROM_10M_TO_50M),
        (2.5e8, RevenueBand.FROM_50M_TO_250M),
    ):
        if revenue < limit:
            return band
    return RevenueBand.OVER_250M


def _ensure_segments(manager: User) -> int:
    specs = [
        (
            "Retail prospects",
            SegmentKind.DYNAMIC,
            {"industry__iexact": "Retail"},
            "Retail businesses of any size.",
        ),
        (
            "Mid-size companies",
            SegmentKind.DYNAMIC,
            {"employee_count__gte": 20, "employee_count__lte": 500},
            "20–500 employees: our sweet spot.",
        ),
        ("DACH", SegmentKind.DYNAMIC, {"country__in": ["DE", "AT", "CH"]}, "German-speaking markets."),
        ("Webinar attendees", SegmentKind.STATIC, {}, "People who joined the autumn webinar."),
    ]
    created = 0
    for name, kind, criteria, description in specs:
        segment, was_created = Segment.objects.get_or_create(
            name=name,
            defaults={"kind": kind, "criteria": criteria, "description": description, "created_by": manager},
        )
        created += was_created
        if kind == SegmentKind.DYNAMIC:
            services.refresh_dynamic_segment(segment=segment)
        elif was_created:
            picks = (
                Lead.objects.filter(source=LeadSource.EVENT).order_by("id").values_list("id", flat=True)[:60]
            )
            SegmentMembership.objects.bulk_create(
                [SegmentMembership(segment=segment, lead_id=i) for i in picks]
            )
    return created


# --- Historical outcomes from the shared X Education export ---------------------------------------

# Filled in by the sales team during or after follow-up: they leak the outcome (see shared/data README).
XEDUCATION_LEAKY_COLUMNS = frozenset(
    {
        "Tags",
        "Lead Quality",
        "Lead Profile",
        "Asymmetrique Activity Index",
        "Asymmetrique Profile Index",
        "Asymmetrique Activity Score",
        "Asymmetrique Profile Score",
        "Last Activity",
        "Last Notable Activity",
    }
)
XEDUCATION_SOURCE = {
    "google": LeadSource.PAID_ADS,
    "organic search": LeadSource.ORGANIC_SEARCH,
    "direct traffic": LeadSource.WEB_FORM,
    "olark chat": LeadSource.CHAT,
    "live chat": LeadSource.CHAT,
    "reference": LeadSource.REFERRAL,
    "welingak website": LeadSource.REFERRAL,
    "referral sites": LeadSource.REFERRAL,
    "facebook": LeadSource.SOCIAL,
    "social media": LeadSource.SOCIAL,
    "bing": LeadSource.PAID_ADS,
    "click2call": LeadSource.OTHER,
}


def import_xeducation(path: Path, *, now: datetime, limit: int | None = None) -> int:
    """Import the X Education leads as closed past leads (won = Converted), skipping leaky columns.

    Idempotent: rows are matched on their Prospect ID, kept in `custom`.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; the shared data folder sits beside the project.")
    done = set(
        Lead.objects.filter(
            source__in=LeadSource.values, custom__has_key="xeducation_prospect_id"
        ).values_list("custom__xeducation_prospect_id", flat=True)
    )
    rows = list(_read_rows(path))[:limit]
    new: list[Lead] = []
    total = len(rows)
    for n, row in enumerate(rows):
        prospect = row.get("Prospect ID", "")
        if not prospect or prospect in done:
            continue
        # No timestamps in the export: spread arrivals over the past year in Lead Number order.
        created = now - timedelta(days=365) + timedelta(days=300 * n / max(total, 1))
        custom: dict[str, Any] = {"xeducation_prospect_id": prospect}
        for column, value in row.items():
            if column in XEDUCATION_LEAKY_COLUMNS or column in ("Prospect ID", "Converted", "Lead Source"):
                continue
            if value in ("", "Select"):
                continue
            custom[column] = _number_or_text(value)
        converted = row.get("Converted") == "1"
        closed = created + timedelta(days=14)
        new.append(
            Lead(
                first_name="",
                last_name="",
                email=None,
                company_name="",
                source=XEDUCATION_SOURCE.get(row.get("Lead Source", "").strip().lower(), LeadSource.IMPORT),
                status=LeadStatus.WON if converted else LeadStatus.LOST,
                lost_reason="" if converted else "Did not enrol",
                status_changed_at=closed,
                closed_at=closed,
                created_at=created,
                custom=custom,
            )
        )
    services.load_history(leads=new)
    return len(new)


def _read_rows(path: Path) -> Iterable[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def _number_or_text(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() else number
