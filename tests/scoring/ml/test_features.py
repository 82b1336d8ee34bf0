"""Features: what a person would write down, the same on the training path and the scoring path.

The lead-level features are one expression each (`LEAD_FEATURES`); training reads them through the
ORM (`build_batch`, any database) and the scoring path in its one CSV query (`predict_batch`,
PostgreSQL). The interaction features come from two different queries into one numpy function.
The tests marked `needs_postgresql` compare the two paths; without PostgreSQL they skip and say so.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.db import connection

from bench.synthetic import make_history
from leadcrm.models import Lead
from scoring.ml.features import (
    LEAD_FEATURES,
    WINDOWS,
    build_batch,
    feature_labels,
    leads_by_id,
    predict_batch,
)
from scoring.ml.pipeline import MISSING, normalise_text
from scoring.models import ScoreSnapshot
from tests.factories import make_interaction, make_lead

pytestmark = pytest.mark.django_db

needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason=f"no PostgreSQL (the test database is {connection.vendor}): the scoring path's one-query "
    "features (predict_batch) exist only there; set DATABASE_URL=postgres://… to run this (CI does)",
)
CUSTOM = ["budget", "plan", "plan_interest", "plan__tier", "2024", "note", "flag", "nested", "never_set"]


def every_feature_name(custom: list[str]) -> list[str]:
    labels, _, _ = feature_labels()
    return [*labels, *(f"custom.{key}" for key in custom)]


def missing_as_none(value):
    # CSV cannot tell an empty text from NULL; the model reads both as "not given".
    return None if value is None or value != value or value == "" else value


def odd_leads(now):
    """Leads on the edges: no email, no '@', several '@', upper-case free mail, blank phones, consent
    given later, unicode, quotes, commas and line breaks in text, odd custom keys and values, events
    exactly on window edges, a duration written as text, a call's duration, chat tone."""
    day = timedelta(days=1)
    leads = [
        make_lead(
            email=None,
            phone="   ",
            source="referral",
            industry='Food, "fine"\ndining',  # CSV's separator, quote and line break in one value
            job_title="Geschäftsführerin — Café ☕",
            country="CI",
            preferred_language="pt-BR",
            utm_source="news'letter",
            utm_medium="e-mail\\weekly",  # a backslash
            utm_campaign='Frühjahr "26", 50 % off',
            employee_count=12,
            created_at=now - timedelta(days=10, hours=6),
            custom={
                "budget": "1,200",
                "plan": "Pro",
                "plan__tier": "gold",  # not a path into "plan"
                "2024": "yes",  # not an array index
                "note": 'He said "hi",\nthen left — ünïcødé ✓',
                "flag": True,
            },
        ),
        make_lead(
            email="Someone@GMAIL.com",
            phone="+49 30 1234",
            annual_revenue_band="1m_10m",
            created_at=now + timedelta(hours=1),  # e.g. another machine's clock ahead
            custom={"budget": 1200.5, "flag": False, "nested": {"a": [1, "x"]}},
        ),
        make_lead(
            email="x@firm.example",
            phone="ask reception",  # not blank: given, digits or not
            marketing_consent=True,
            marketing_consent_at=now + day,  # not yet given as of `now`
            custom={"plan": None, "budget": 900},
        ),
        make_lead(marketing_consent=True, custom={"budget": "n/a"}),  # consent without a time
        make_lead(
            email="a@b@GMAIL.COM",  # the domain is after the last '@'
            phone="\u00a0",  # a no-break space: databases differ on whether it is blank
            source="paid_ads",
            industry="",
            marketing_consent=True,
            marketing_consent_at=now - day,
            custom={},
        ),
        make_lead(email="no-at-sign", phone="\t+1 555\n", fit_score=42.5, engagement_score=7.25),
    ]
    Lead.objects.filter(pk=leads[5].pk).update(email="")  # an empty e-mail, not NULL
    Lead.objects.filter(pk=leads[3].pk).update(email="no-at-sign")
    first = leads[0]
    # Day boundaries of the 7/30/90-day windows, counted in whole days like the numpy path.
    start_of_today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for back in (0, 6, 7, 29, 30, 89, 90, 400):
        make_interaction(
            first, "page_view", occurred_at=start_of_today - back * day, payload={"duration_s": 61}
        )
        make_interaction(first, "page_view", occurred_at=start_of_today - back * day - timedelta(seconds=1))
    recent = max(start_of_today, now - timedelta(minutes=5))  # today, even just after midnight
    make_interaction(first, "page_view", occurred_at=recent, payload={"duration_s": "abc"})
    make_interaction(first, "call", occurred_at=now - day, payload={"duration_s": 900})
    make_interaction(first, "page_view", occurred_at=now + day)  # in the future: not yet known
    make_interaction(leads[1], "chat_message", occurred_at=now - 2 * day, sentiment=-0.75)
    make_interaction(leads[1], "chat_message", occurred_at=now - day, sentiment=0.25)
    make_interaction(leads[1], "email_open", occurred_at=now - 3 * day)
    return leads


def features_of(path, lead_ids, *, now, custom=CUSTOM):
    """{lead id: {feature: value}} from one path."""
    if path == "one query":
        batch = predict_batch(lead_ids, now=now, names=every_feature_name(custom))
    else:
        batch = build_batch(leads_by_id(lead_ids), now=now, custom_keys=custom)
    return {int(i): row for i, row in zip(batch.lead_ids, batch.frame.to_dict("records"), strict=True)}


PATHS = ["orm", pytest.param("one query", marks=needs_postgresql)]


@needs_postgresql
@pytest.mark.parametrize("order", ["compact", "scattered"])
def test_one_query_features_equal_the_training_path(now, order):
    make_history(60, now=now, seed=5, closed_share=0.3)
    odd = odd_leads(now)
    ids = sorted(Lead.objects.values_list("id", flat=True))
    if order == "scattered":  # far-apart ids take the index-lookup branch, not the range scan
        ids = [ids[0], *[lead.pk for lead in odd], ids[len(ids) // 2]]
    names = every_feature_name(CUSTOM)

    fast = predict_batch(ids, now=now, names=names)
    slow = build_batch(leads_by_id(ids), now=now, custom_keys=CUSTOM)

    # Every column training builds is compared: lead fields, custom attributes, interactions.
    assert set(fast.frame.columns) == set(slow.frame.columns) == set(names)
    # Neither path promises an order: compare lead by lead.
    a_order, b_order = np.argsort(fast.lead_ids), np.argsort(slow.lead_ids)
    assert fast.lead_ids[a_order].tolist() == slow.lead_ids[b_order].tolist() == sorted(ids)
    np.testing.assert_allclose(fast.cutoff, slow.cutoff)
    _, _, numeric = feature_labels()
    for name in names:
        a = fast.frame[name].to_numpy()[a_order]
        b = slow.frame[name].to_numpy()[b_order]
        if name in numeric:
            np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=1e-9, atol=1e-9, err_msg=name)
        else:
            assert [missing_as_none(v) for v in a] == [missing_as_none(v) for v in b], name
    # The edge cases are in the comparison: each text column has a value somewhere.
    present = {name for name in names if any(missing_as_none(v) is not None for v in slow.frame[name])}
    assert set(names) - present == {"custom.never_set"}


@pytest.mark.parametrize("path", PATHS)
def test_lead_level_features_are_what_a_person_would_write_down(now, path):
    leads = odd_leads(now)
    got = features_of(path, [lead.pk for lead in leads], now=now)
    rows = [got[lead.pk] for lead in leads]

    def column(name):
        return [missing_as_none(row[name]) for row in rows]

    assert column("email_kind") == ["none", "free mail", "company", "company", "free mail", "none"]
    assert column("has_phone")[:4] == ["no", "yes", "yes", "no"]
    assert column("has_phone")[5] == "yes"
    assert column("marketing_consent") == ["no", "no", "no", "yes", "yes", "no"]
    assert column("source")[:2] == ["Referral", "Other"]
    assert column("source")[4] == "Paid ads"
    assert column("annual_revenue_band")[1] == "$1M–$10M"
    assert column("industry")[:2] == ['Food, "fine"\ndining', None]
    assert column("industry")[4] is None  # empty text is not a category
    first = rows[0]
    assert first["job_title"] == "Geschäftsführerin — Café ☕"
    assert (first["country"], first["preferred_language"]) == ("CI", "pt-BR")
    assert (first["utm_source"], first["utm_medium"]) == ("news'letter", "e-mail\\weekly")
    assert first["utm_campaign"] == 'Frühjahr "26", 50 % off'
    assert first["employee_count"] == 12
    assert np.isnan(rows[1]["employee_count"])
    assert first["lead_age_days"] == pytest.approx(10.25, abs=1e-4)  # SQLite: whole seconds
    assert rows[1]["lead_age_days"] == 0  # created after `now`: never negative
    assert (rows[5]["rule_fit_score"], rows[5]["rule_engagement_score"]) == (42.5, 7.25)
    assert rows[0]["rule_fit_score"] == 0

    # Custom attributes: the value as text (numbers as the model's type inference reads them);
    # JSON null, a missing key and a placeholder are all "not given" to the model.
    assert first["custom.budget"] == "1,200"
    assert first["custom.plan__tier"] == "gold"
    assert first["custom.2024"] == "yes"
    assert first["custom.note"] == 'He said "hi",\nthen left — ünïcødé ✓'
    assert [str(row["custom.budget"]) for row in rows[1:3]] == ["1200.5", "900"]
    assert [row["custom.flag"] for row in rows[:2]] == ["true", "false"]
    assert normalise_text(rows[1]["custom.nested"]).replace(" ", "") == '{"a":[1,"x"]}'
    assert [normalise_text(row["custom.plan"]) for row in rows[2:4]] == [MISSING, MISSING]
    assert normalise_text(rows[3]["custom.budget"]) == MISSING
    assert all(normalise_text(row["custom.never_set"]) == MISSING for row in rows)


@pytest.mark.parametrize("path", PATHS)
def test_window_counts_and_web_time_are_what_a_person_would_count(now, path):
    lead = odd_leads(now)[0]
    row = features_of(path, [lead.pk], now=now, custom=["budget"])[lead.pk]
    # Page views at midnight 0, 6, 7, 29, 30, 89, 90 and 400 days back, each with one a second
    # earlier (the day before), plus one today: whole days back 0 0 1 6 7 7 8 29 30 30 31 89 90 …
    by_window = {w: row[f"page_view_{w}d"] for w in WINDOWS}
    assert by_window == {7: 4, 30: 8, 90: 12}
    assert row["call_7d"] == 1
    assert row["touches_total"] == 18  # 17 page views and the call; the one tomorrow is not known yet
    # Web time: page views only (61 s each, 8 of them); the call's 900 s and "abc" are not web time.
    assert row["web_minutes"] == pytest.approx(8 * 61 / 60)
    assert row["days_since_last_touch"] == 0
    assert row["days_since_first_touch"] == 401
    assert np.isnan(row["sentiment_mean"])


@pytest.mark.parametrize("path", PATHS)
def test_chat_tone_is_the_mean_and_the_most_negative_message(now, path):
    lead = odd_leads(now)[1]
    row = features_of(path, [lead.pk], now=now, custom=[])[lead.pk]
    assert row["sentiment_mean"] == pytest.approx(-0.25)
    assert row["sentiment_min"] == -0.75
    assert (row["chat_message_7d"], row["email_open_7d"]) == (2, 1)


def test_a_closed_lead_is_described_as_of_its_closing(now):
    day = timedelta(days=1)
    closed_at = now - 10 * day
    lead = make_lead(
        status="won",
        closed_at=closed_at,
        created_at=now - 100 * day,
        marketing_consent=True,
        marketing_consent_at=now - 5 * day,  # after closing: not known when it closed
        fit_score=90,  # written after closing
        custom={"plan": "pro"},
    )
    earlier = make_lead(
        status="lost",
        lost_reason="price",
        closed_at=closed_at,
        created_at=now - 20 * day,
        marketing_consent=True,
        marketing_consent_at=now - 11 * day,
    )
    ScoreSnapshot.objects.create(lead=lead, taken_at=now - 30 * day, rule_score=10, fit_score=10)
    ScoreSnapshot.objects.create(
        lead=lead, taken_at=now - 12 * day, rule_score=35, fit_score=30, engagement_score=5
    )
    ScoreSnapshot.objects.create(lead=lead, taken_at=now - 2 * day, rule_score=90, fit_score=90)
    make_interaction(lead, "page_view", occurred_at=closed_at - 3 * day, payload={"duration_s": 120})
    make_interaction(lead, "purchase", occurred_at=closed_at + day)  # after closing: never a feature

    batch = build_batch(Lead.objects.filter(pk__in=[lead.pk, earlier.pk]), now=None, custom_keys=["plan"])
    rows = dict(zip(batch.lead_ids.tolist(), batch.frame.to_dict("records"), strict=True))
    won, lost = rows[lead.pk], rows[earlier.pk]
    assert (won["marketing_consent"], lost["marketing_consent"]) == ("no", "yes")
    assert won["lead_age_days"] == pytest.approx(90)
    assert (won["rule_fit_score"], won["rule_engagement_score"]) == (30, 5)
    assert np.isnan(lost["rule_fit_score"])  # no score before closing
    assert (won["page_view_7d"], won["purchase_90d"], won["touches_total"]) == (1, 0, 1)
    assert won["web_minutes"] == 2
    assert won["days_since_last_touch"] == 3
    assert won["custom.plan"] == "pro"
    assert sorted(batch.status.tolist()) == ["lost", "won"]
    np.testing.assert_allclose(batch.cutoff, closed_at.timestamp() / 86400.0)


def test_every_lead_level_feature_has_a_label_and_a_kind():
    labels, formats, numeric = feature_labels()
    for name, feature in LEAD_FEATURES.items():
        assert labels[name] == feature.label
        assert (name in numeric) == (feature.kind == "number") == (name in formats)
