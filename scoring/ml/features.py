"""CRM features for a batch of leads, built set-based: a few aggregate queries, then numpy/pandas.

Each lead is described as of a cutoff: `now` when predicting, and its own `closed_at` when it is a
training example, so a model only ever learns from what was known before the outcome. Status,
closing fields, lost reason, owner and the score fields written after closing never become
features; the rule-score parts of a closed lead come from its last score snapshot before closing.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    F,
    FloatField,
    Func,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KT
from django.db.models.functions import Floor

from leadcrm.models import Interaction, InteractionKind, Lead, LeadSource, LeadStatus, RevenueBand
from scoring.models import ScoreSnapshot

WINDOWS = (7, 30, 90)
HALF_LIFE_DAYS = 14.0
MAX_CUSTOM_KEYS = 30
OUTCOME_STATUSES = (LeadStatus.WON, LeadStatus.LOST, LeadStatus.DISQUALIFIED)
FREE_MAIL = frozenset(
    [
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "icloud.com",
        "aol.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "proton.me",
        "protonmail.com",
        "mail.ru",
        "yandex.ru",
        "qq.com",
        "163.com",
    ]
)

# Lead fields that are features (as the category words a salesperson knows).
LEAD_CATEGORIES = {
    "source": "Source",
    "industry": "Industry",
    "annual_revenue_band": "Revenue",
    "job_title": "Job title",
    "country": "Country",
    "preferred_language": "Language",
    "utm_source": "Campaign source",
    "utm_medium": "Campaign medium",
    "utm_campaign": "Campaign",
}
CHOICE_LABELS = {"source": dict(LeadSource.choices), "annual_revenue_band": dict(RevenueBand.choices)}
# Never features: decided at or after closing, or who works the lead rather than who the lead is.
EXCLUDED_FIELDS = frozenset(
    {
        "status",
        "status_changed_at",
        "qualified_at",
        "closed_at",
        "lost_reason",
        "owner",
        "ml_probability",
        "ml_factors",
        "priority",
        "score_breakdown",
        "grade",
        "scored_at",
        "rescore_requested_at",
        "updated_at",
        "live_until",
        "last_activity_at",
    }
)


class Epoch(Func):
    """Seconds since 1970 of a datetime column, computed in the database (no per-value parsing here)."""

    output_field = FloatField()

    def as_postgresql(self, compiler, connection, **extra):  # noqa: ANN001, ANN003
        return self.as_sql(
            compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)::float8", **extra
        )

    def as_sqlite(self, compiler, connection, **extra):  # noqa: ANN001, ANN003
        return self.as_sql(
            compiler, connection, template="CAST(strftime('%%%%s', %(expressions)s) AS REAL)", **extra
        )


def _json_number_sql(column: str, key: str) -> str:
    """PostgreSQL: a JSON key's value as float8 when it is a JSON number, else NULL (never an error)."""
    return f"CASE WHEN jsonb_typeof({column} -> '{key}') = 'number' THEN ({column} ->> '{key}')::float8 END"


class JsonNumber(Func):
    """A JSON key's value as a float when it is a JSON number, else NULL: `"duration_s": "abc"`
    sent by some integration must not stop everyone's scoring with a cast error."""

    output_field = FloatField()

    def __init__(self, column: str, key: str) -> None:
        super().__init__(F(column))
        self.key = key

    def as_postgresql(self, compiler, connection, **extra):  # noqa: ANN001, ANN003
        sql, params = compiler.compile(self.source_expressions[0])
        return _json_number_sql(sql, self.key), params

    def as_sqlite(self, compiler, connection, **extra):  # noqa: ANN001, ANN003
        sql, params = compiler.compile(self.source_expressions[0])
        path = f"'$.{self.key}'"
        return (
            f"CASE WHEN json_type({sql}, {path}) IN ('integer', 'real') THEN json_extract({sql}, {path}) END",
            params,
        )


def _choice_labels(values: pd.Series, labels: dict[str, str]) -> pd.Series:
    """Stored choice codes as the words a salesperson knows; unknown codes stay as they are."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)  # word the few distinct codes once
    words = np.array([labels.get(u, u) for u in uniques.tolist()] + [None], dtype=object)
    return pd.Series(words[codes], index=values.index)  # code -1 (missing) picks None


@dataclass
class Batch:
    """Features of a batch of leads, with what training needs beside them."""

    lead_ids: np.ndarray
    frame: pd.DataFrame
    cutoff: np.ndarray  # days since 1970 each lead is described as of (closed_at when training)
    status: np.ndarray | None = None  # the outcome, for training labels (not read when predicting)


def feature_labels() -> tuple[dict[str, str], dict[str, str], set[str]]:
    """(labels, explanation formats, numeric column names) of the CRM's own features."""
    labels = dict(LEAD_CATEGORIES)
    formats: dict[str, str] = {}
    numeric: set[str] = set()

    def add(name: str, label: str, fmt: str) -> None:
        labels[name], formats[name] = label, fmt
        numeric.add(name)

    add("employee_count", "Employees", "{v:,.0f} employees")
    add("lead_age_days", "Days since the lead arrived", "Arrived {v:.0f} days before")
    for kind in InteractionKind:
        for window in WINDOWS:
            add(
                f"{kind.slug}_{window}d",
                f"{kind.label} ({window} days)",
                f"{{v:.0f}} × {kind.label.lower()} in {window} days",
            )
    add("touches_total", "Interactions in all", "{v:.0f} interactions in all")
    add("days_since_last_touch", "Days since the last activity", "Last activity {v:.0f} days ago")
    add("days_since_first_touch", "Days since the first touch", "First touch {v:.0f} days ago")
    add("engagement_decayed", "Recent engagement", "Recent engagement {v:.1f} (decayed)")
    add("web_minutes", "Time on the site", "Spent {v:.0f} min on the site")
    add("sentiment_mean", "Chat tone", "Chat tone {v:+.2f}")
    add("sentiment_min", "Most negative chat message", "Most negative chat message {v:+.2f}")
    add("rule_fit_score", "Rule fit score", "Rule fit score {v:.0f}")
    add("rule_engagement_score", "Rule engagement score", "Rule engagement score {v:.0f}")
    labels["email_kind"] = "Email"
    labels["has_phone"] = "Phone number given"
    labels["marketing_consent"] = "Marketing consent"
    return labels, formats, numeric


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.casefold())


def is_protected(name: str, protected: Sequence[str]) -> bool:
    """True when a feature name (lead field or `custom.<key>`) is a protected attribute."""
    key = _norm(name.removeprefix("custom."))
    return any(key == _norm(p) for p in protected)


def custom_keys_in_use(leads: QuerySet, *, sample: int = 5000) -> list[str]:
    """The custom attribute names common enough to learn from (seen on ≥ 1% of a sample)."""
    counts: Counter[str] = Counter()
    rows = list(leads.order_by("-id").values_list("custom", flat=True)[:sample])
    for custom in rows:
        if isinstance(custom, dict):
            counts.update(k for k in custom if isinstance(k, str))
    floor = max(1, int(0.01 * len(rows)))
    return [k for k, c in counts.most_common(MAX_CUSTOM_KEYS) if c >= floor]


def fetch_frame(qs: QuerySet, names: Sequence[str]) -> pd.DataFrame:
    """Rows of a values_list query as a DataFrame (the training path; scoring uses `_fetch_csv`)."""
    # One plain cursor fetch: psycopg's C row loader beats both the ORM's model machinery and
    # COPY's per-row messages for the tens of thousands of rows a chunk returns.
    try:
        sql, params = qs.values_list(*names).query.sql_with_params()
    except EmptyResultSet:  # e.g. `lead_id IN ()`: no query to run
        return pd.DataFrame({name: pd.Series(dtype=object) for name in names})
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return pd.DataFrame.from_records(rows, columns=list(names), coerce_float=False)


def _any_of(column: str, ids: list[int]) -> RawSQL:
    # `= ANY(array)`: one parameter, and PostgreSQL hashes the array, so a range scan of a chunk
    # of ids checks membership in O(1) per row instead of one index probe per id.
    # Sent as one array literal: psycopg adapting 20,000 ints one by one cost more than the query.
    return RawSQL(f"{column} = ANY(%s::bigint[])", [_id_array(ids)], output_field=BooleanField())


def _id_array(ids: Sequence[int]) -> str:
    """Ids as one PostgreSQL array literal: one parameter instead of 20,000 adapted ints."""
    return "{" + ",".join(str(int(i)) for i in ids) + "}"


def leads_by_id(ids: Sequence[int]) -> QuerySet:
    """Leads with these ids; on PostgreSQL one array parameter instead of a giant IN list."""
    ids = [int(i) for i in ids]
    if connection.vendor == "postgresql" and ids:
        # The range lets the planner use the primary-key and (lead, time) indexes for chunks of ids.
        return Lead.objects.filter(
            _any_of(f'"{Lead._meta.db_table}"."id"', ids), pk__gte=min(ids), pk__lte=max(ids)
        )
    return Lead.objects.filter(pk__in=ids)


def _num(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def _bool(values: pd.Series) -> np.ndarray:
    return values.map(lambda v: v in (True, "t", "true", "True", 1, "1")).to_numpy(dtype=bool)


def build_batch(
    leads: QuerySet,
    *,
    now: datetime | None,
    custom_keys: Sequence[str],
) -> Batch:
    """Features of `leads` as of `now`, or as of each lead's closed_at when `now` is None (training)."""
    training = now is None
    annotations: dict = {f"c__{i}": KT(f"custom__{key}") for i, key in enumerate(custom_keys)}
    if training:
        before_close = ScoreSnapshot.objects.filter(lead=OuterRef("pk"), taken_at__lt=OuterRef("closed_at"))
        before_close = before_close.order_by("-taken_at")
        annotations["r_fit"] = Subquery(before_close.values("fit_score")[:1])
        annotations["r_eng"] = Subquery(before_close.values("engagement_score")[:1])
    else:
        annotations["r_fit"] = F("fit_score")
        annotations["r_eng"] = F("engagement_score")
    annotations["t_closed"] = Epoch("closed_at")
    annotations["t_created"] = Epoch("created_at")
    annotations["t_consent"] = Epoch("marketing_consent_at")
    names = [
        "id",
        "status",
        "email",
        "phone",
        "employee_count",
        "marketing_consent",
        *LEAD_CATEGORIES,
        *annotations,
    ]
    rows = fetch_frame(leads.annotate(**annotations).order_by(), names)
    rows = rows.reset_index(drop=True)
    n = len(rows)
    ids = rows["id"].astype(np.int64).to_numpy()
    cutoff = _num(rows["t_closed"]) / 86400.0 if training else np.full(n, now.timestamp() / 86400.0)

    frame: dict[str, object] = {}
    for name in LEAD_CATEGORIES:
        values = rows[name].astype(object).where(rows[name].notna(), None)
        if name in CHOICE_LABELS:
            values = _choice_labels(values, CHOICE_LABELS[name])
        frame[name] = values.to_numpy(dtype=object)
    frame["employee_count"] = pd.to_numeric(rows["employee_count"], errors="coerce").to_numpy(dtype=float)
    frame["lead_age_days"] = np.maximum(cutoff - _num(rows["t_created"]) / 86400.0, 0)
    email = rows["email"].fillna("").astype(str)
    domain = email.str.split("@").str[-1].str.casefold()  # after the last @ (works on no rows too)
    frame["email_kind"] = np.where(
        email == "", "none", np.where(domain.isin(FREE_MAIL), "free mail", "company")
    )
    frame["has_phone"] = np.where(rows["phone"].fillna("").astype(str).str.strip() != "", "yes", "no")
    consent_at = _num(rows["t_consent"]) / 86400.0
    consented = _bool(rows["marketing_consent"]) & (np.isnan(consent_at) | (consent_at < cutoff))
    frame["marketing_consent"] = np.where(consented, "yes", "no")
    frame["rule_fit_score"] = pd.to_numeric(rows["r_fit"], errors="coerce").to_numpy(dtype=float)
    frame["rule_engagement_score"] = pd.to_numeric(rows["r_eng"], errors="coerce").to_numpy(dtype=float)
    for i, key in enumerate(custom_keys):
        frame[f"custom.{key}"] = rows[f"c__{i}"].to_numpy(dtype=object)

    if training:
        interactions = Interaction.objects.filter(lead__in=leads.values("pk"))
    else:  # the ids already fetched: an array parameter, bounded so the (lead, time) index is used
        interactions = Interaction.objects.filter(
            lead_id__gte=int(ids.min()) if n else 0,
            lead_id__lte=int(ids.max()) if n else 0,
        )
        interactions = (
            interactions.filter(_any_of(f'"{Interaction._meta.db_table}"."lead_id"', ids.tolist()))
            if connection.vendor == "postgresql"
            else interactions.filter(lead_id__in=ids.tolist())
        )
    if training:
        interactions = interactions.filter(occurred_at__lt=F("lead__closed_at"))
    else:
        interactions = interactions.filter(occurred_at__lt=now)
    frame.update(_interaction_features(interactions, ids, cutoff))
    return Batch(
        lead_ids=ids,
        frame=pd.DataFrame(frame),
        status=rows["status"].astype(str).to_numpy(),
        cutoff=cutoff,
    )


# `_fetch_csv` field kind: a jsonb value, read as a float when it is a JSON number, else missing.
JSON_NUMBER = "json number"
# Text features whose values are our own words (no separator or quote to escape in CSV).
_TEXT_KINDS: dict[str, object] = {"email_kind": str, "has_phone": str, "marketing_consent": str}


def predict_batch(ids: Sequence[int], *, now: datetime, names: Sequence[str]) -> Batch:
    """PostgreSQL, the scoring path: features `names` of these leads as of `now`, in two scans.

    The same features as `build_batch(..., now=now)`: the lead-level ones computed in SQL, and
    the interactions read as plain rows (no GROUP BY: an index range scan is the cheapest thing
    PostgreSQL can do, and it shares the machine's cores) for the same numpy code training uses.
    Both come back as one CSV text each, parsed by pandas: no per-value Python objects. Leads
    not found are left out.
    """
    ids = sorted({int(i) for i in ids})
    _, _, numeric = feature_labels()
    params: dict[str, object] = {"now": now, "now_s": now.timestamp()}
    lead_cols: list[tuple[str, str]] = []  # (name, SQL) from the lead row
    for name in dict.fromkeys(names):
        if name in LEAD_CATEGORIES:
            lead_cols.append((name, f"l.{Lead._meta.get_field(name).column}"))
        elif name == "employee_count":
            lead_cols.append((name, "l.employee_count"))
        elif name == "lead_age_days":
            lead_cols.append((name, "greatest((%(now_s)s - date_part('epoch', l.created_at)) / 86400.0, 0)"))
        elif name == "email_kind":
            params["free_mail"] = sorted(FREE_MAIL)
            lead_cols.append(
                (
                    name,
                    "CASE WHEN coalesce(l.email, '') = '' THEN 'none' "
                    "WHEN lower(split_part(l.email, '@', -1)) = ANY(%(free_mail)s) THEN 'free mail' "
                    "ELSE 'company' END",
                )
            )
        elif name == "has_phone":
            lead_cols.append((name, "CASE WHEN l.phone ~ '\\S' THEN 'yes' ELSE 'no' END"))
        elif name == "marketing_consent":
            lead_cols.append(
                (
                    name,
                    "CASE WHEN l.marketing_consent AND (l.marketing_consent_at IS NULL "
                    "OR l.marketing_consent_at < %(now)s) THEN 'yes' ELSE 'no' END",
                )
            )
        elif name == "rule_fit_score":
            lead_cols.append((name, "l.fit_score::float8"))
        elif name == "rule_engagement_score":
            lead_cols.append((name, "l.engagement_score::float8"))
        elif name.startswith("custom."):
            key = f"key{len(lead_cols)}"
            params[key] = name.removeprefix("custom.")
            lead_cols.append((name, f"l.custom ->> %({key})s"))
        # Interaction features come from the rows below; any other name is not a CRM feature
        # (left out, encoded as missing by the schema).
    lo, hi = (ids[0], ids[-1]) if ids else (0, -1)
    params["lo"], params["hi"] = lo, hi
    # A compact chunk of ids (the recompute's case) is one range scan; scattered ids (events)
    # are looked up one by one in the index instead of scanning everything between them.
    params["ids"] = _id_array(ids)
    compact = hi - lo < 4 * len(ids) + 1000
    # `l.id + 0`: the array stays a hashed filter on the range scan, not one index probe per id.
    lead_where = "l.id BETWEEN %(lo)s AND %(hi)s" + (
        " AND (l.id + 0) = ANY(%(ids)s::bigint[])" if compact else " AND l.id = ANY(%(ids)s::bigint[])"
    )
    expressions: list[tuple[str, str, object]] = [
        ("id", "l.id", np.int64),
        *[
            (name, sql, float if name in numeric else _TEXT_KINDS.get(name, object))
            for name, sql in lead_cols
        ],
    ]
    rows = _fetch_csv(expressions, f"FROM {Lead._meta.db_table} l WHERE {lead_where}", params)
    n = len(rows)
    lead_ids = rows["id"].to_numpy(dtype=np.int64)
    cutoff = np.full(n, params["now_s"] / 86400.0)
    frame: dict[str, object] = {}
    for name, _ in lead_cols:
        values = rows[name]
        if name in CHOICE_LABELS:
            values = _choice_labels(values, CHOICE_LABELS[name])
        frame[name] = values.to_numpy(dtype=float if name in numeric else object)

    # One row per interaction known at `now`, in the shape of training's daily groups (n = 1).
    inter_where = "i.lead_id BETWEEN %(lo)s AND %(hi)s" if compact else "i.lead_id = ANY(%(ids)s::bigint[])"
    events = _fetch_csv(
        [
            ("lead_id", "i.lead_id", np.int64),
            ("kind", "i.kind", np.int64),
            ("day", "floor(date_part('epoch', i.occurred_at) / 86400.0)::int", float),
            ("sentiment", "i.sentiment", float),
            # The JSON value is found once per row; a number is sent as its own text (no float
            # round trip in SQL), anything else as missing. Page views only: not a call's duration.
            (
                "secs",
                f"CASE WHEN i.kind = {int(InteractionKind.PAGE_VIEW)} THEN i.payload -> 'duration_s' END",
                JSON_NUMBER,
            ),
        ],
        f"FROM {Interaction._meta.db_table} i WHERE {inter_where} AND i.occurred_at < %(now)s",
        params,
    )
    sentiment = events["sentiment"].to_numpy(dtype=float)
    has_sentiment = ~np.isnan(sentiment)
    daily = pd.DataFrame(
        {
            "lead_id": events["lead_id"].to_numpy(),
            "kind": events["kind"].to_numpy(),
            "day": events["day"].to_numpy(),
            "n": 1.0,
            "s_sum": np.where(has_sentiment, sentiment, 0.0),
            "s_n": has_sentiment.astype(float),
            "s_min": sentiment,
            "secs": events["secs"].to_numpy(dtype=float),
        }
    )
    wanted = set(names)
    frame.update(
        {
            k: v
            for k, v in _interaction_features_from(daily, lead_ids, cutoff, wanted=wanted).items()
            if k in wanted
        }
    )
    return Batch(
        lead_ids=lead_ids,
        frame=pd.DataFrame(frame, index=pd.RangeIndex(n)),
        cutoff=cutoff,
    )


def _fetch_csv(expressions: list[tuple[str, str, object]], source: str, params: dict) -> pd.DataFrame:
    """PostgreSQL: rows of `SELECT <expressions> <source>` as one CSV text, parsed by pandas.

    `expressions` are (column name, SQL, dtype); free text (dtype object) is CSV-quoted in SQL,
    dtype str marks text known to need no quoting, `JSON_NUMBER` a jsonb value kept only when it
    is a number (a float column), NULL is an empty field. The whole result is
    one `string_agg` value: one message, one Python string, one C parse, instead of a message
    and a generator step per row (COPY) or a Python object per value (a cursor fetch).
    """
    inner = ", ".join(f"{sql} AS c{i}" for i, (_, sql, _) in enumerate(expressions))
    fields = []
    for i, (_, _, dtype) in enumerate(expressions):
        if dtype is object:
            fields.append(
                f"CASE WHEN c{i} IS NULL THEN '' ELSE '\"' || replace(c{i}, '\"', '\"\"') || '\"' END"
            )
        elif dtype == JSON_NUMBER:  # a JSON number's text has no separator or quote
            fields.append(f"CASE WHEN jsonb_typeof(c{i}) = 'number' THEN c{i}::text ELSE '' END")
        else:
            fields.append(f"coalesce(c{i}::text, '')")
    # OFFSET 0 keeps the inner query a subquery, so each expression is computed once per row
    # (pulled up, PostgreSQL would compute it again for the quoting and the NULL test).
    sql = f"SELECT string_agg(concat_ws(',', {', '.join(fields)}), E'\\n') FROM (SELECT {inner} {source} OFFSET 0) s"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        text = cursor.fetchone()[0] or ""
    columns = [name for name, _, _ in expressions]
    dtypes = {
        name: object if dtype is str else float if dtype == JSON_NUMBER else dtype
        for name, _, dtype in expressions
    }
    if not text:
        return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})
    return pd.read_csv(
        io.StringIO(text), names=columns, header=None, dtype=dtypes, keep_default_na=False, na_values=[""]
    )


def _interaction_features(
    interactions: QuerySet, ids: np.ndarray, cutoff: np.ndarray
) -> dict[str, np.ndarray]:
    """Counts by kind and window, recency, first touch, decayed engagement, web time, chat tone."""
    # One GROUP BY (lead, kind, day): rows scale with active days, not with events.
    daily = interactions.annotate(day=Floor(Epoch("occurred_at") / 86400.0)).values("lead_id", "kind", "day")
    daily = daily.annotate(
        n=Count("id"),
        s_sum=Sum("sentiment"),
        s_n=Count("sentiment"),
        s_min=Min("sentiment"),
        # Time on the site: page views only (a call's duration is not web time).
        secs=Sum(JsonNumber("payload", "duration_s"), filter=Q(kind=InteractionKind.PAGE_VIEW)),
    ).order_by()
    rows = fetch_frame(daily, ["lead_id", "kind", "day", "n", "s_sum", "s_n", "s_min", "secs"])
    return _interaction_features_from(rows, ids, cutoff)


def _interaction_features_from(
    rows: pd.DataFrame, ids: np.ndarray, cutoff: np.ndarray, *, wanted: set[str] | None = None
) -> dict[str, np.ndarray]:
    """The interaction features from (lead, kind, day) groups: numpy only, shared by both paths."""
    n_leads = len(ids)
    out: dict[str, np.ndarray] = {}
    lead_pos = pd.Index(ids).get_indexer(rows["lead_id"].astype(np.int64))
    keep = lead_pos >= 0
    rows, lead_pos = rows[keep], lead_pos[keep]
    kind = rows["kind"].astype(np.int64).to_numpy()
    count = pd.to_numeric(rows["n"], errors="coerce").to_numpy(dtype=float)
    age = np.floor(cutoff[lead_pos]) - _num(rows["day"])  # whole days before the cutoff
    age = np.maximum(age, 0)
    n_kinds = max(k.value for k in InteractionKind) + 1
    slot = lead_pos * n_kinds + np.clip(kind, 0, n_kinds - 1)
    for window in WINDOWS:
        inside = age < window
        # One bincount per window for every kind at once: (lead, kind) cells.
        table = np.bincount(slot[inside], weights=count[inside], minlength=n_leads * n_kinds)
        table = table.reshape(n_leads, n_kinds)
        for k in InteractionKind:
            name = f"{k.slug}_{window}d"
            if wanted is None or name in wanted:
                out[name] = table[:, k.value]
    out["touches_total"] = np.bincount(lead_pos, weights=count, minlength=n_leads)
    last = np.full(n_leads, np.inf)
    np.minimum.at(last, lead_pos, age)
    first = np.full(n_leads, -np.inf)
    np.maximum.at(first, lead_pos, age)
    out["days_since_last_touch"] = np.where(np.isinf(last), np.nan, last)
    out["days_since_first_touch"] = np.where(np.isinf(first), np.nan, first)
    out["engagement_decayed"] = np.bincount(
        lead_pos, weights=count * np.exp2(-age / HALF_LIFE_DAYS), minlength=n_leads
    )
    secs = pd.to_numeric(rows["secs"], errors="coerce").fillna(0).to_numpy(dtype=float)
    out["web_minutes"] = np.bincount(lead_pos, weights=secs, minlength=n_leads) / 60.0
    s_n = pd.to_numeric(rows["s_n"], errors="coerce").fillna(0).to_numpy(dtype=float)
    s_sum = pd.to_numeric(rows["s_sum"], errors="coerce").fillna(0).to_numpy(dtype=float)
    total_n = np.bincount(lead_pos, weights=s_n, minlength=n_leads)
    total = np.bincount(lead_pos, weights=s_sum, minlength=n_leads)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["sentiment_mean"] = np.where(total_n > 0, total / total_n, np.nan)
    s_min = pd.to_numeric(rows["s_min"], errors="coerce").to_numpy(dtype=float)
    lowest = np.full(n_leads, np.inf)
    has = ~np.isnan(s_min)
    np.minimum.at(lowest, lead_pos[has], s_min[has])
    out["sentiment_min"] = np.where(np.isinf(lowest), np.nan, lowest)
    return out


def training_leads(*, until: datetime | None = None) -> QuerySet:
    """Leads with an outcome and a closing time: won is positive, lost and disqualified negative."""
    qs = Lead.objects.filter(status__in=OUTCOME_STATUSES, closed_at__isnull=False)
    return qs.filter(closed_at__lte=until) if until else qs


def labels_of(status: np.ndarray) -> np.ndarray:
    return (status == LeadStatus.WON).astype(float)
