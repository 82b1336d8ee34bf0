"""A synthetic CRM history with a known signal, for the benchmark and the tests.

Leads get fields, custom attributes and interactions whose mix depends on a hidden propensity;
closed leads get an outcome drawn from it. Some interactions happen after closing (a thank-you
call, a purchase) so that a leaky feature pipeline would be caught by the tests.
"""

from __future__ import annotations

import io
import json
from datetime import datetime

import numpy as np
import pandas as pd
from django.db import connection, models

from leadcrm.models import Interaction, Lead

SOURCES = np.array(["web_form", "referral", "paid_ads", "purchased_list", "event", "organic_search"])
SOURCE_EFFECT = np.array([0.3, 1.0, -0.2, -1.2, 0.4, 0.2])
INDUSTRIES = np.array(["Retail", "Software", "Finance", "Health", "Education", "Manufacturing"])
PLANS = np.array(["basic", "pro", "enterprise", None], dtype=object)


def generate(
    n: int, *, now: datetime, seed: int = 0, closed_share: float = 0.7
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(leads, interactions) frames; leads carry status/closed_at; interactions reference row numbers."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, len(SOURCES), n)
    industry = rng.integers(0, len(INDUSTRIES), n)
    employees = np.round(np.exp(rng.normal(3.5, 1.5, n))).astype(int)
    plan = rng.integers(0, len(PLANS), n)
    budget = np.round(np.exp(rng.normal(8, 1, n)), -2)
    gender = rng.choice(np.array(["f", "m", "x"]), n, p=[0.48, 0.48, 0.04])
    intent = rng.normal(0, 1, n)  # hidden: drives engagement and outcome
    logit = (
        -0.8
        + SOURCE_EFFECT[source]
        + 0.25 * np.log1p(employees)
        - 0.5
        + np.array([0.0, 0.5, 0.9, -0.3])[plan]
        + 1.8 * intent
    )
    converts = rng.random(n) < 1 / (1 + np.exp(-logit))
    age_days = rng.uniform(1, 400, n)
    created = np.datetime64(now.replace(tzinfo=None)) - (age_days * 86400).astype("timedelta64[s]")
    closed = rng.random(n) < closed_share
    close_after = rng.uniform(3, 60, n)
    closed &= close_after < age_days
    closed_at = created + (close_after * 86400).astype("timedelta64[s]")
    status = np.where(~closed, rng.choice(np.array(["new", "working", "qualified"]), n), "")
    status = np.where(closed & converts, "won", status)
    status = np.where(closed & ~converts, rng.choice(np.array(["lost", "disqualified"]), n), status)
    leads = pd.DataFrame(
        {
            "first_name": "Lead",
            "last_name": [f"N{i}" for i in range(n)],
            "email": [f"lead{seed}-{i}@{'gmail.com' if i % 3 == 0 else 'example.com'}" for i in range(n)],
            "source": SOURCES[source],
            "industry": INDUSTRIES[industry],
            "employee_count": employees,
            "status": status,
            "created_at": created,
            "closed_at": np.where(closed, closed_at, np.datetime64("NaT")),
            "lost_reason": np.where(status == "lost", "price", ""),
            "custom": [
                {"plan_interest": PLANS[p], "budget": float(b), "gender": g} if PLANS[p] else {"gender": g}
                for p, b, g in zip(plan, budget, gender, strict=True)
            ],
        }
    )
    # Interactions before the cutoff (close or now) scale with intent.
    horizon = np.where(closed, close_after, age_days)
    per_lead = rng.poisson(np.clip(2.0 + 2.0 * intent, 0.2, 15))
    lead_ix = np.repeat(np.arange(n), per_lead)
    when = rng.uniform(0, 1, len(lead_ix)) * horizon[lead_ix]
    kinds = rng.choice(
        np.array([1, 4, 5, 13, 14, 15, 3]), len(lead_ix), p=[0.45, 0.2, 0.1, 0.1, 0.07, 0.04, 0.04]
    )
    sentiment = np.where(kinds == 13, np.clip(rng.normal(0.3 * intent[lead_ix], 0.4), -1, 1), np.nan)
    duration = np.where(
        kinds == 1, np.round(rng.exponential(60 + 40 * np.clip(intent[lead_ix], -1, 3))), np.nan
    )
    # After closing: won leads get a purchase, everyone some noise. A leak if anyone used it.
    won = np.flatnonzero(status == "won")
    after_ix = np.concatenate([won, np.flatnonzero(closed)])
    after_kind = np.concatenate([np.full(len(won), 19), np.full(closed.sum(), 14)])
    after_when = horizon[after_ix] + rng.uniform(0.1, 5, len(after_ix))
    interactions = pd.DataFrame(
        {
            "lead": np.concatenate([lead_ix, after_ix]),
            "kind": np.concatenate([kinds, after_kind]),
            "offset_days": np.concatenate([when, after_when]),
            "sentiment": np.concatenate([sentiment, np.full(len(after_ix), np.nan)]),
            "duration_s": np.concatenate([duration, np.full(len(after_ix), np.nan)]),
        }
    )
    interactions["occurred_at"] = created[interactions["lead"].to_numpy()] + (
        interactions["offset_days"].to_numpy() * 86400
    ).astype("timedelta64[s]")
    interactions = interactions[interactions["occurred_at"] < np.datetime64(now.replace(tzinfo=None))]
    return leads, interactions.reset_index(drop=True)


def insert(leads: pd.DataFrame, interactions: pd.DataFrame) -> np.ndarray:
    """Write the frames (COPY on PostgreSQL, bulk_create elsewhere); returns the new lead ids in order."""
    before = Lead.objects.order_by("-id").values_list("id", flat=True).first() or 0
    _copy(Lead, leads)
    ids = np.array(list(Lead.objects.filter(id__gt=before).order_by("id").values_list("id", flat=True)))
    rows = pd.DataFrame(
        {
            "lead_id": ids[interactions["lead"].to_numpy()],
            "kind": interactions["kind"].astype(int).to_numpy(),
            "channel": "web",
            "occurred_at": interactions["occurred_at"].to_numpy(),
            "created_at": interactions["occurred_at"].to_numpy(),
            "sentiment": interactions["sentiment"].to_numpy(),
            "payload": [
                {"duration_s": float(d)} if not np.isnan(d) else {}
                for d in interactions["duration_s"].to_numpy()
            ],
        }
    )
    _copy(Interaction, rows)
    return ids


def _copy(model: type[models.Model], frame: pd.DataFrame) -> None:
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    data: dict[str, object] = {}
    for field in fields:
        name = field.attname
        source = (
            frame[name if name in frame.columns else field.name]
            if (name in frame.columns or field.name in frame.columns)
            else None
        )
        if source is None:
            default = field.get_default() if field.has_default() or not field.null else None
            if getattr(field, "auto_now", False) or isinstance(default, datetime):
                default = pd.Timestamp.now(tz="UTC").tz_localize(None).to_datetime64()
            data[name] = [default] * len(frame) if isinstance(default, dict | list) else default
        else:
            data[name] = source.to_numpy()
    out = pd.DataFrame(data, index=frame.index)
    for field in fields:
        if isinstance(field, models.JSONField):
            out[field.attname] = [json.dumps(v) for v in out[field.attname]]
    if connection.vendor != "postgresql":
        objects = []
        for record in out.to_dict("records"):
            for field in fields:
                value = record[field.attname]
                if isinstance(field, models.JSONField):
                    record[field.attname] = json.loads(value)
                elif isinstance(field, models.DateTimeField) and value is not None and not pd.isna(value):
                    record[field.attname] = pd.Timestamp(value).tz_localize("UTC").to_pydatetime()
                elif value is not None and not isinstance(value, str | dict | list) and pd.isna(value):
                    record[field.attname] = None
                elif isinstance(value, np.generic):
                    record[field.attname] = value.item()
            objects.append(model(**record))
        model._default_manager.bulk_create(objects, batch_size=1000)
        return
    for field in fields:
        if isinstance(field, models.DateTimeField):
            values = pd.to_datetime(out[field.attname])
            out[field.attname] = values.dt.strftime("%Y-%m-%d %H:%M:%S+00").where(values.notna(), None)
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, header=False)
    columns = ", ".join(f'"{f.column}"' for f in fields)
    # Empty text in NOT NULL columns is "", not NULL.
    not_null = ", ".join(
        f'"{f.column}"' for f in fields if isinstance(f, models.CharField | models.TextField) and not f.null
    )
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(
            f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL ({not_null}))'
        ) as copy,
    ):
        copy.write(buffer.getvalue().encode())


def make_history(n: int, *, now: datetime, seed: int = 0, closed_share: float = 0.7) -> np.ndarray:
    """Generate and insert a history of `n` leads; returns their ids."""
    leads, interactions = generate(n, now=now, seed=seed, closed_share=closed_share)
    return insert(leads, interactions)
