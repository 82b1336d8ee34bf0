"""The scoring path's one-query features (PostgreSQL) equal the general numpy path's, value for value."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.db import connection

from bench.synthetic import make_history
from leadcrm.models import Lead
from scoring.ml.features import WINDOWS, build_batch, feature_labels, leads_by_id, predict_batch
from tests.factories import make_interaction, make_lead

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-query path is PostgreSQL's"),
]


def every_feature_name(custom: list[str]) -> list[str]:
    labels, _, _ = feature_labels()
    return [*labels, *(f"custom.{key}" for key in custom)]


def missing_as_none(value):
    # CSV cannot tell an empty text from NULL; the model reads both as "not given".
    return None if value is None or value != value or value == "" else value


def odd_leads(now):
    """Leads on the edges: no email, no '@', upper-case free mail, blank phone, consent given later,
    events exactly on window edges, a duration written as text, a call's duration, chat tone."""
    day = timedelta(days=1)
    leads = [
        make_lead(
            email=None,
            phone="   ",
            source="referral",
            industry='Food, "fine"\ndining',  # CSV's separator, quote and line break in one value
            custom={"budget": "1,200", "plan": "Pro"},
        ),
        make_lead(email="Someone@GMAIL.com", phone="+49 30 1234", annual_revenue_band="1m_10m"),
        make_lead(
            email="x@firm.example",
            marketing_consent=True,
            marketing_consent_at=now + day,  # not yet given as of `now`
            custom={"plan": None, "budget": 900},
        ),
        make_lead(marketing_consent=True, custom={"budget": "n/a"}),
    ]
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


@pytest.mark.parametrize("order", ["compact", "scattered"])
def test_one_query_features_equal_the_numpy_path(now, order):
    make_history(60, now=now, seed=5, closed_share=0.3)
    odd = odd_leads(now)
    ids = sorted(Lead.objects.values_list("id", flat=True))
    if order == "scattered":  # far-apart ids take the index-lookup branch, not the range scan
        ids = [ids[0], *[lead.pk for lead in odd], ids[len(ids) // 2]]
    custom = ["budget", "plan", "plan_interest"]
    names = every_feature_name(custom)

    fast = predict_batch(ids, now=now, names=names)
    slow = build_batch(leads_by_id(ids), now=now, custom_keys=custom)

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


def test_window_counts_and_web_time_are_what_a_person_would_count(now):
    lead = odd_leads(now)[0]
    batch = predict_batch([lead.pk], now=now, names=every_feature_name(["budget"]))
    row = batch.frame.iloc[0]
    # Page views at midnight 0, 6, 7, 29, 30, 89, 90 and 400 days back, each with one a second
    # earlier (the day before), plus one today: whole days back 0 0 1 6 7 7 8 29 30 30 31 89 90 …
    by_window = {w: row[f"page_view_{w}d"] for w in WINDOWS}
    assert by_window == {7: 4, 30: 8, 90: 12}
    assert row["call_7d"] == 1
    # Web time: page views only (61 s each, 8 of them); the call's 900 s and "abc" are not web time.
    assert row["web_minutes"] == pytest.approx(8 * 61 / 60)
    assert row["days_since_last_touch"] == 0
    assert row["days_since_first_touch"] == 401
    assert row["email_kind"] == "none"
    assert row["has_phone"] == "no"
    assert row["source"] == "Referral"
    assert row["custom.budget"] == "1,200"
    assert row["industry"] == 'Food, "fine"\ndining'
