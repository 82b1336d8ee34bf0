"""CRM features for a batch of leads, built set-based: a few queries, then numpy/pandas.

Each lead is described as of a cutoff: `now` when predicting, and its own `closed_at` when it is a
training example, so a model only ever learns from what was known before the outcome. Status,
closing fields, lost reason, owner and the score fields written after closing never become
features; the rule-score parts of a closed lead come from its last score snapshot before closing.

Every lead-level feature is written once, in `LEAD_FEATURES`: a database expression of the lead
row as of the cutoff. Training selects it through the ORM (`build_batch`, PostgreSQL or SQLite);
the scoring path on PostgreSQL selects the same compiled SQL in its one lead query
(`predict_batch`). The interaction features are one numpy function fed by an aggregate
(training) or by plain rows (scoring); tests/scoring/ml/test_features.py holds the two paths equal.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    CharField,
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
    TextField,
    Value,
    When,
)
from django.db.models.expressions import Combinable, RawSQL
from django.db.models.functions import Floor, Greatest
from django.db.models.lookups import In

from leadcrm.models import Interaction, InteractionKind, Lead, LeadSource, LeadStatus, RevenueBand
from scoring.models import ScoreSnapshot

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler

Sql = tuple[str, Any]  # what an expression compiles to: SQL and its parameters

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

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> Sql:
        # date_part is float8 from the start (EXTRACT builds a numeric first): the same number, cheaper.
        return self.as_sql(compiler, connection, template="date_part('epoch', %(expressions)s)", **extra)

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> Sql:
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

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> Sql:
        sql, params = compiler.compile(self.source_expressions[0])
        return _json_number_sql(sql, self.key), params

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> Sql:
        sql, params = compiler.compile(self.source_expressions[0])
        path = f"'$.{self.key}'"
        return (
            f"CASE WHEN json_type({sql}, {path}) IN ('integer', 'real') THEN json_extract({sql}, {path}) END",
            params,
        )


class JsonText(Func):
    """One top-level key of a JSON column, as the database reads it as text.

    The key is taken as it is: never split at `__` or read as an array index, as Django's KT()
    would (a custom attribute called "plan__tier" or "2024" is an ordinary key here).
    """

    output_field = TextField()

    def __init__(self, column: str, key: str) -> None:
        super().__init__(F(column))
        self.key = key

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> Sql:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"({sql} ->> %s)", (*params, self.key)

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> Sql:
        # As KT() reads a key on SQLite: JSON null, true and false as those words, other values as
        # json_extract gives them. The path names the key as the stored JSON text writes it.
        sql, params = compiler.compile(self.source_expressions[0])
        path = "$." + json.dumps(self.key)
        return (
            f"(CASE WHEN json_type({sql}, %s) IN ('null', 'true', 'false') THEN json_type({sql}, %s) "
            f"ELSE json_extract({sql}, %s) END)",
            (*params, path, *params, path, *params, path),
        )


class EmailDomain(Func):
    """The lower-cased text after an e-mail address's last '@' (all of it when there is none)."""

    template = "lower(split_part(%(expressions)s, '@', -1))"  # PostgreSQL
    output_field = CharField()

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> Sql:
        # No split_part: rtrim strips every character but '@' from the right, which leaves the text
        # up to the last '@'; the domain is what follows. (SQLite's lower() changes ASCII letters
        # only; the free-mail domains are ASCII.)
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"lower(substr({sql}, length(rtrim({sql}, replace({sql}, '@', ''))) + 1))",
            (*params, *params, *params),
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


@dataclass(frozen=True)
class AsOf:
    """When leads are described: all at `now` (predicting), or each at its own closed_at (training)."""

    now: datetime | None  # None: training

    def time(self) -> datetime | F:
        return F("closed_at") if self.now is None else self.now

    def day(self) -> Combinable:
        """Days since 1970 as a float: the same number as the batch's `cutoff`."""
        if self.now is None:
            return Epoch("closed_at") / Value(86400.0)
        return Value(self.now.timestamp() / 86400.0)

    def rule_score(self, field: str) -> Combinable:
        if self.now is not None:
            return F(field)
        # A closed lead's score as it stood before closing: its last snapshot taken before then.
        snapshots = ScoreSnapshot.objects.filter(lead=OuterRef("pk"), taken_at__lt=OuterRef("closed_at"))
        return Subquery(snapshots.order_by("-taken_at").values(field)[:1])


NUMBER, CATEGORY, WORD = "number", "category", "word"


@dataclass(frozen=True)
class LeadFeature:
    """A feature of the lead row, written once: the expression both training and scoring select."""

    label: str
    kind: str  # NUMBER; CATEGORY (text as entered); WORD (our own words: nothing to quote in CSV)
    expression: Callable[[AsOf], Combinable]
    explain: str | None = None  # how a number reads in a reason, e.g. "{v:,.0f} employees"


def _field(name: str) -> Callable[[AsOf], Combinable]:
    return lambda asof: F(name)


def _lead_age_days(asof: AsOf) -> Combinable:
    return Greatest(asof.day() - Epoch("created_at") / Value(86400.0), Value(0.0))


def _email_kind(asof: AsOf) -> Combinable:
    return Case(
        When(Q(email__isnull=True) | Q(email=""), then=Value("none")),
        When(In(EmailDomain("email"), sorted(FREE_MAIL)), then=Value("free mail")),
        default=Value("company"),
    )


def _has_phone(asof: AsOf) -> Combinable:
    return Case(When(phone__regex=r"\S", then=Value("yes")), default=Value("no"))  # not just blanks


def _marketing_consent(asof: AsOf) -> Combinable:
    # Given before the cutoff (a consent without a time counts as given).
    before = Q(marketing_consent_at__isnull=True) | Q(marketing_consent_at__lt=asof.time())
    return Case(When(Q(marketing_consent=True) & before, then=Value("yes")), default=Value("no"))


# The lead-level features, in the training frame's column order (custom attributes follow them).
LEAD_FEATURES: dict[str, LeadFeature] = {
    **{name: LeadFeature(label, CATEGORY, _field(name)) for name, label in LEAD_CATEGORIES.items()},
    "employee_count": LeadFeature("Employees", NUMBER, _field("employee_count"), "{v:,.0f} employees"),
    "lead_age_days": LeadFeature(
        "Days since the lead arrived", NUMBER, _lead_age_days, "Arrived {v:.0f} days before"
    ),
    "email_kind": LeadFeature("Email", WORD, _email_kind),
    "has_phone": LeadFeature("Phone number given", WORD, _has_phone),
    "marketing_consent": LeadFeature("Marketing consent", WORD, _marketing_consent),
    "rule_fit_score": LeadFeature(
        "Rule fit score", NUMBER, lambda asof: asof.rule_score("fit_score"), "Rule fit score {v:.0f}"
    ),
    "rule_engagement_score": LeadFeature(
        "Rule engagement score",
        NUMBER,
        lambda asof: asof.rule_score("engagement_score"),
        "Rule engagement score {v:.0f}",
    ),
}


def custom_feature(key: str) -> LeadFeature:
    """The custom attribute `key` as a feature: its value as text (types are inferred later)."""
    return LeadFeature(f"custom.{key}", CATEGORY, lambda asof: JsonText("custom", key))


def lead_feature(name: str) -> LeadFeature | None:
    """The lead-level feature called `name` (a CRM field or `custom.<key>`); None for any other name."""
    if name.startswith("custom."):
        return custom_feature(name.removeprefix("custom."))
    return LEAD_FEATURES.get(name)


def feature_labels() -> tuple[dict[str, str], dict[str, str], set[str]]:
    """(labels, explanation formats, numeric column names) of the CRM's own features."""
    labels = {name: feature.label for name, feature in LEAD_FEATURES.items()}
    formats = {name: feature.explain for name, feature in LEAD_FEATURES.items() if feature.explain}
    numeric = {name for name, feature in LEAD_FEATURES.items() if feature.kind == NUMBER}

    def add(name: str, label: str, fmt: str) -> None:
        labels[name], formats[name] = label, fmt
        numeric.add(name)

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


def _any_of(column: str, id_array: str) -> RawSQL:
    # `= ANY(array)`: one parameter, and PostgreSQL hashes the array, so a range scan of a chunk
    # of ids checks membership in O(1) per row instead of one index probe per id.
    # Sent as one array literal: psycopg adapting 20,000 ints one by one cost more than the query.
    return RawSQL(f"{column} = ANY(%s::bigint[])", [id_array], output_field=BooleanField())


def _id_array(ids: Sequence[int]) -> str:
    """Ids (ints) as one PostgreSQL array literal: one parameter instead of 20,000 adapted ints."""
    return "{" + ",".join(map(str, ids)) + "}"  # anything but an int fails the bigint[] cast


def leads_by_id(ids: Sequence[int]) -> QuerySet:
    """Leads with these ids; on PostgreSQL one array parameter instead of a giant IN list."""
    ids = [int(i) for i in ids]
    if connection.vendor == "postgresql" and ids:
        # The range lets the planner use the primary-key and (lead, time) indexes for chunks of ids.
        return Lead.objects.filter(
            _any_of(f'"{Lead._meta.db_table}"."id"', _id_array(ids)), pk__gte=min(ids), pk__lte=max(ids)
        )
    return Lead.objects.filter(pk__in=ids)


def _num(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def _feature_values(name: str, kind: str, values: pd.Series) -> np.ndarray:
    """A lead-level feature column as the model reads it: floats, or the values as objects."""
    if kind == NUMBER:
        return _num(values)
    if name in CHOICE_LABELS:
        values = _choice_labels(values, CHOICE_LABELS[name])
    return values.to_numpy(dtype=object)


def build_batch(
    leads: QuerySet,
    *,
    now: datetime | None,
    custom_keys: Sequence[str],
) -> Batch:
    """Features of `leads` as of `now`, or as of each lead's closed_at when `now` is None (training)."""
    asof = AsOf(now)
    # One query for the lead-level features: the expressions the scoring path selects, as of the cutoff.
    features = {**LEAD_FEATURES, **{f"custom.{key}": custom_feature(key) for key in custom_keys}}
    aliases = {f"f__{i}": name for i, name in enumerate(features)}
    annotations = {alias: features[name].expression(asof) for alias, name in aliases.items()}
    selected = leads.annotate(t_closed=Epoch("closed_at"), **annotations).order_by()
    rows = fetch_frame(selected, ["id", "status", "t_closed", *aliases]).reset_index(drop=True)
    n = len(rows)
    ids = rows["id"].astype(np.int64).to_numpy()
    cutoff = _num(rows["t_closed"]) / 86400.0 if now is None else np.full(n, now.timestamp() / 86400.0)
    frame: dict[str, np.ndarray] = {
        name: _feature_values(name, features[name].kind, rows[alias]) for alias, name in aliases.items()
    }

    if now is None:
        interactions = Interaction.objects.filter(lead__in=leads.values("pk"))
    else:  # the ids already fetched: an array parameter, bounded so the (lead, time) index is used
        interactions = Interaction.objects.filter(
            lead_id__gte=int(ids.min()) if n else 0,
            lead_id__lte=int(ids.max()) if n else 0,
        )
        interactions = (
            interactions.filter(_any_of(f'"{Interaction._meta.db_table}"."lead_id"', _id_array(ids.tolist())))
            if connection.vendor == "postgresql"
            else interactions.filter(lead_id__in=ids.tolist())
        )
    if now is None:
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


# `_fetch_csv` column kinds: a jsonb value, read as a float when it is a JSON number, else missing;
# and text known to need no quoting (our own words).
JSON_NUMBER = "json number"
CSV_TYPES: dict[str, object] = {NUMBER: float, CATEGORY: object, WORD: str}


def predict_batch(ids: Sequence[int], *, now: datetime, names: Sequence[str]) -> Batch:
    """PostgreSQL, the scoring path: features `names` of these leads as of `now`, in two scans.

    The same features as `build_batch(..., now=now)`: the lead-level ones are the same SQL
    (`LEAD_FEATURES`, compiled once more here), and the interactions are read as plain rows (no
    GROUP BY: an index range scan is the cheapest thing PostgreSQL can do, and it shares the
    machine's cores) for the same numpy code training uses. Both come back as one CSV text each,
    parsed by pandas: no per-value Python objects. Leads not found are left out.
    """
    ids = sorted({int(i) for i in ids})
    asof = AsOf(now)
    # Interaction features come from the rows below; any other name is not a CRM feature (left
    # out, encoded as missing by the schema).
    features = {name: feature for name in dict.fromkeys(names) if (feature := lead_feature(name))}
    lo, hi = (ids[0], ids[-1]) if ids else (0, -1)
    # A compact chunk of ids (the recompute's case) is one range scan; scattered ids (events)
    # are looked up one by one in the index instead of scanning everything between them.
    compact = hi - lo < 4 * len(ids) + 1000
    lead_id = f'"{Lead._meta.db_table}"."id"'
    # `id + 0`: the array stays a hashed filter on the range scan, not one index probe per id.
    id_array = _id_array(ids)  # built once: the two queries share it
    in_chunk = _any_of(f"({lead_id} + 0)" if compact else lead_id, id_array)
    leads = Lead.objects.filter(in_chunk, pk__range=(lo, hi))
    columns = {"c0": F("id"), **{f"c{i}": f.expression(asof) for i, f in enumerate(features.values(), 1)}}
    select, params = leads.annotate(**columns).values(*columns).order_by().query.sql_with_params()
    rows = _fetch_csv(
        [("id", np.int64), *[(name, CSV_TYPES[feature.kind]) for name, feature in features.items()]],
        select,
        params,
    )
    n = len(rows)
    lead_ids = rows["id"].to_numpy(dtype=np.int64)
    cutoff = np.full(n, now.timestamp() / 86400.0)
    frame: dict[str, np.ndarray] = {}
    for name, feature in features.items():
        values = rows[name]
        if name in CHOICE_LABELS:
            values = _choice_labels(values, CHOICE_LABELS[name])
        frame[name] = values.to_numpy(dtype=float if feature.kind == NUMBER else object)

    # One row per interaction known at `now`, in the shape of training's daily groups (n = 1).
    expressions: list[tuple[str, str, object]] = [
        ("lead_id", "i.lead_id", np.int64),
        ("kind", "i.kind", np.int64),
        ("day", "floor(date_part('epoch', i.occurred_at) / 86400.0)::int", float),
        ("sentiment", "i.sentiment", float),
        # The JSON value is found once per row; a number is sent as its own text (no float round
        # trip in SQL), anything else as missing. Page views only: not a call's duration.
        (
            "secs",
            f"CASE WHEN i.kind = {int(InteractionKind.PAGE_VIEW)} THEN i.payload -> 'duration_s' END",
            JSON_NUMBER,
        ),
    ]
    inter_where = "i.lead_id BETWEEN %(lo)s AND %(hi)s" if compact else "i.lead_id = ANY(%(ids)s::bigint[])"
    events = _fetch_csv(
        [(name, dtype) for name, _, dtype in expressions],
        "SELECT "
        + ", ".join(f"{sql} AS c{i}" for i, (_, sql, _) in enumerate(expressions))
        + f" FROM {Interaction._meta.db_table} i WHERE {inter_where} AND i.occurred_at < %(now)s",
        {"lo": lo, "hi": hi, "ids": id_array, "now": now},
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


def _fetch_csv(
    columns: Sequence[tuple[str, object]], select: str, params: Sequence[Any] | dict[str, Any]
) -> pd.DataFrame:
    """PostgreSQL: the rows of `select`, whose columns are named c0, c1, …, as one CSV text parsed by pandas.

    `columns` are (name, dtype): free text (dtype object) is CSV-quoted in SQL, dtype str marks text
    known to need no quoting, `JSON_NUMBER` a jsonb value kept only when it is a number (a float
    column), NULL is an empty field. The whole result is one `string_agg` value: one message, one
    Python string, one C parse, instead of a message and a generator step per row (COPY) or a
    Python object per value (a cursor fetch).
    """
    fields = []
    for i, (_, dtype) in enumerate(columns):
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
    sql = f"SELECT string_agg(concat_ws(',', {', '.join(fields)}), E'\\n') FROM ({select} OFFSET 0) s"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        text = cursor.fetchone()[0] or ""
    dtypes = {
        name: object if dtype is str else float if dtype == JSON_NUMBER else dtype for name, dtype in columns
    }
    if not text:
        return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})
    return pd.read_csv(
        io.StringIO(text),
        names=list(dtypes),
        header=None,
        dtype=dtypes,
        keep_default_na=False,
        na_values=[""],
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
    """Leads with an outcome and a closing time: won is positive, lost and disqualified negative.
    Erased leads are left out: the model never learns from a person who asked to be forgotten."""
    qs = Lead.objects.filter(status__in=OUTCOME_STATUSES, closed_at__isnull=False, erased_at__isnull=True)
    return qs.filter(closed_at__lte=until) if until else qs


def labels_of(status: np.ndarray) -> np.ndarray:
    return (status == LeadStatus.WON).astype(float)
