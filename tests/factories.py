"""Plain factory functions: each fills only what a test leaves out."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import connection
from django.utils import timezone

from leadcrm.models import FollowUp, Interaction, InteractionKind, Lead, Segment
from leadcrm.permissions import MANAGER_GROUP, SALESPERSON_GROUP

_seq = itertools.count(1)


def make_user(username: str | None = None, *, role: str | None = SALESPERSON_GROUP, **fields: Any) -> User:
    n = next(_seq)
    user = User.objects.create_user(
        username=username or f"user{n}", password=fields.pop("password", "pw-for-tests-123"), **fields
    )
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def make_manager(username: str | None = None, **fields: Any) -> User:
    return make_user(username, role=MANAGER_GROUP, **fields)


def make_lead(**fields: Any) -> Lead:
    n = next(_seq)
    defaults: dict[str, Any] = {
        "first_name": "Ada",
        "last_name": f"Lovelace{n}",
        "email": f"lead{n}@example.com",
        "company_name": "Analytical Engines Ltd",
    }
    defaults.update(fields)
    return Lead.objects.create(**defaults)


def make_interaction(
    lead: Lead, kind: str | int = "page_view", *, occurred_at: datetime | None = None, **fields: Any
) -> Interaction:
    kind_value = InteractionKind(kind) if isinstance(kind, int) else InteractionKind.from_slug(kind)
    return Interaction.objects.create(
        lead=lead, kind=kind_value, occurred_at=occurred_at or timezone.now(), **fields
    )


def make_segment(name: str | None = None, **fields: Any) -> Segment:
    return Segment.objects.create(name=name or f"Segment {next(_seq)}", **fields)


def make_follow_up(lead: Lead, **fields: Any) -> FollowUp:
    fields.setdefault("due_at", timezone.now() + timezone.timedelta(days=1))
    if fields.get("assigned_to") is None and fields.get("done_at") is None:
        # An open follow-up always has an owner (a database constraint): the lead's, else a
        # stand-in without a role (so it never joins the routing or a role's lists).
        fields["assigned_to"] = lead.owner or User.objects.get_or_create(username="follow-up-owner")[0]
    return FollowUp.objects.create(lead=lead, **fields)


def insert_leads(n: int) -> None:
    """N plain leads in one INSERT … SELECT (PostgreSQL), for tests that need volume, not detail."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {Lead._meta.db_table}
                (first_name, last_name, email, phone, company_name, industry, employee_count, annual_revenue_band,
                 job_title, country, city, timezone, preferred_language, source, utm_source, utm_medium, utm_campaign,
                 utm_term, utm_content, status, lost_reason, marketing_consent, contact_consent, custom, visitor_id,
                 rule_score, fit_score, engagement_score, grade, score_breakdown, ml_factors, priority, created_at,
                 updated_at)
            SELECT 'Lead', 'N' || i, 'bulk' || i || '@bulk.example', '', 'Company ' || (i %% 500),
                   (ARRAY['Retail','Software','Bakery'])[1 + i %% 3], i %% 800, '', 'Owner', 'DE', '', '', '',
                   'other', '', '', '', '', '', 'new', '', false, false, '{{}}', '', 0, 0, 0, '', '[]', '[]', 0,
                   now(), now()
            FROM generate_series(1, %s) AS i""",
            [n],
        )
