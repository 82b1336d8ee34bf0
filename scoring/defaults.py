"""The rules and grade bands a new install starts with: a small business's sensible defaults.

Managers change them on the rules page; `install_default_rules` only adds what is missing.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from leadcrm.models import InteractionKind
from scoring.models import Category, Detector, GradeBand, GradeDimension, Operator, Rule, RuleChange

K = InteractionKind
DEFAULT_RULES: list[dict[str, Any]] = [
    # Fit: who they are
    {"name": "Owner or C-level", "category": Category.FIT, "points": 15, "field": "job_title",
     "operator": Operator.IN_LIST, "value": "Owner, CEO, Founder, Co-founder, Managing Director",
     "reason": "Decision maker (owner or C-level)"},
    {"name": "Director title", "category": Category.FIT, "points": 10, "field": "job_title",
     "operator": Operator.CONTAINS, "value": "director", "reason": "Director-level title"},
    {"name": "Head of a team", "category": Category.FIT, "points": 10, "field": "job_title",
     "operator": Operator.CONTAINS, "value": "head of", "reason": "Leads a team"},
    {"name": "Manager title", "category": Category.FIT, "points": 5, "field": "job_title",
     "operator": Operator.CONTAINS, "value": "manager", "reason": "Manager title"},
    {"name": "Student or intern", "category": Category.FIT, "points": -15, "field": "job_title",
     "operator": Operator.IN_LIST, "value": "Student, Intern", "reason": "Student or intern: rarely buys"},
    {"name": "Company size 10–500", "category": Category.FIT, "points": 15, "field": "employee_count",
     "operator": Operator.BETWEEN, "value": "10, 500", "reason": "Company of 10–500 people: our sweet spot"},
    {"name": "Very small company", "category": Category.FIT, "points": -5, "field": "employee_count",
     "operator": Operator.LESS, "value": "3", "reason": "Fewer than 3 employees"},
    {"name": "Target industry", "category": Category.FIT, "points": 10, "field": "industry",
     "operator": Operator.IN_LIST, "value": "Software, Retail, Marketing agency, Finance",
     "reason": "Industry we serve best"},
    {"name": "Served country", "category": Category.FIT, "points": 5, "field": "country",
     "operator": Operator.IN_LIST, "value": "US, GB, DE, NL, FR, ES, CA, AU",
     "reason": "In a country we serve"},
    {"name": "Referral", "category": Category.FIT, "points": 10, "field": "source",
     "operator": Operator.EQUALS, "value": "referral", "reason": "Came by referral"},
    {"name": "Purchased list", "category": Category.FIT, "points": -10, "field": "source",
     "operator": Operator.EQUALS, "value": "purchased_list", "reason": "From a purchased list"},
    {"name": "Phone given", "category": Category.FIT, "points": 3, "field": "phone",
     "operator": Operator.IS_SET, "value": "", "reason": "Left a phone number"},
    # Engagement: what they do
    {"name": "Pricing page visits", "category": Category.ENGAGEMENT, "points": 5,
     "kinds": [K.PAGE_VIEW], "pattern": "/pricing", "window_days": 30, "cap": 15,
     "reason": "Visited the pricing page {count}× in the last 30 days"},
    {"name": "Page views", "category": Category.ENGAGEMENT, "points": 1, "kinds": [K.PAGE_VIEW],
     "window_days": 60, "cap": 10, "half_life_days": 14, "reason": "Browsed the website ({count} pages)"},
    {"name": "Form submitted", "category": Category.ENGAGEMENT, "points": 10, "kinds": [K.FORM_SUBMIT],
     "window_days": 90, "threshold": 1, "reason": "Filled in a form"},
    {"name": "Content downloads", "category": Category.ENGAGEMENT, "points": 5, "kinds": [K.CONTENT_DOWNLOAD],
     "window_days": 90, "cap": 10, "reason": "Downloaded {count} guides"},
    {"name": "Email clicks", "category": Category.ENGAGEMENT, "points": 3, "kinds": [K.EMAIL_CLICK],
     "window_days": 30, "cap": 9, "half_life_days": 10, "reason": "Clicked our emails ({count}×)"},
    {"name": "Email reply", "category": Category.ENGAGEMENT, "points": 10, "kinds": [K.EMAIL_REPLY],
     "window_days": 60, "threshold": 1, "reason": "Replied to an email"},
    {"name": "Chatted with us", "category": Category.ENGAGEMENT, "points": 8, "kinds": [K.CHAT_MESSAGE],
     "window_days": 30, "threshold": 1, "reason": "Chatted with us this month"},
    {"name": "Social engagement", "category": Category.ENGAGEMENT, "points": 2,
     "kinds": [K.SOCIAL_LIKE, K.SOCIAL_SHARE, K.SOCIAL_COMMENT, K.SOCIAL_FOLLOW], "window_days": 90,
     "cap": 6, "reason": "Engaged on social media ({count}×)"},
    {"name": "Calls", "category": Category.ENGAGEMENT, "points": 5, "kinds": [K.CALL], "window_days": 60,
     "cap": 10, "reason": "Talked on the phone ({count}×)"},
    {"name": "Meeting held", "category": Category.ENGAGEMENT, "points": 15, "kinds": [K.MEETING],
     "window_days": 90, "threshold": 1, "reason": "Met us (demo or meeting)"},
    # Negative / spam signals
    {"name": "Disposable email", "category": Category.NEGATIVE, "points": -20,
     "detector": Detector.DISPOSABLE_EMAIL, "reason": "Throw-away email address"},
    {"name": "Keyboard mash", "category": Category.NEGATIVE, "points": -25, "detector": Detector.KEYBOARD_MASH,
     "reason": "Name or company looks typed at random"},
    {"name": "Name not capitalised", "category": Category.NEGATIVE, "points": -3,
     "detector": Detector.NAME_NOT_CAPITALISED, "reason": "Name typed without capitals"},
    {"name": "Email does not match name", "category": Category.NEGATIVE, "points": -10,
     "detector": Detector.EMAIL_NAME_MISMATCH, "reason": "Placeholder name or someone else's email"},
    {"name": "Failed captcha", "category": Category.NEGATIVE, "points": -30, "detector": Detector.FAILED_CAPTCHA,
     "window_days": 30, "reason": "Failed the captcha"},
    {"name": "Unsubscribed or bounced", "category": Category.NEGATIVE, "points": -15,
     "detector": Detector.UNSUBSCRIBE_BOUNCE, "reason": "Unsubscribed or the email bounced"},
]  # fmt: skip
DEFAULT_BANDS = [
    (GradeDimension.FIT, "A", 40),
    (GradeDimension.FIT, "B", 25),
    (GradeDimension.FIT, "C", 10),
    (GradeDimension.FIT, "D", 0),
    (GradeDimension.ENGAGEMENT, "1", 30),
    (GradeDimension.ENGAGEMENT, "2", 15),
    (GradeDimension.ENGAGEMENT, "3", 5),
    (GradeDimension.ENGAGEMENT, "4", 0),
]


def install_default_rules() -> int:
    """Create the default rule set and grade bands of a small B2B business; idempotent. Returns rules added."""
    added = 0
    with transaction.atomic():
        existing = set(Rule.objects.values_list("name", flat=True))
        for spec in DEFAULT_RULES:
            if spec["name"] in existing:
                continue
            fields = dict(spec)
            fields["kinds"] = [int(k) for k in fields.get("kinds", [])]
            rule = Rule(**fields)
            rule.full_clean()
            rule.save()
            RuleChange.objects.create(
                rule=rule, rule_name=rule.name, action=RuleChange.Action.CREATED, after=rule.as_json()
            )
            added += 1
        # Bands are installed per dimension only when the manager has none of their own.
        configured = set(GradeBand.objects.values_list("dimension", flat=True))
        GradeBand.objects.bulk_create(
            [
                GradeBand(dimension=d, label=label, min_score=m)
                for d, label, m in DEFAULT_BANDS
                if d not in configured
            ]
        )
    return added
