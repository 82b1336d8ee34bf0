"""Rule evaluation for a batch of leads: one lead query, one interaction aggregate, then numpy. No writes.

The pure part (`evaluate`, `fit_points`, `engagement_points`, `grades`, `breakdown_json`) takes arrays
and plain `RuleSpec`s and is tested without a database; `fetch_lead_columns` and `fetch_counters`
are the two queries that feed it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection

from leadcrm.models import Interaction, Lead
from scoring import detectors
from scoring.models import (
    Category,
    GradeBand,
    GradeDimension,
    Rule,
    field_kind,
    parse_value,
)

logger = logging.getLogger(__name__)

# Table names come from the models, never literals: the CRM core owns its tables' names.
LEAD_TABLE = Lead._meta.db_table
INTERACTION_TABLE = Interaction._meta.db_table
RULE_TABLE = Rule._meta.db_table
BAND_TABLE = GradeBand._meta.db_table

# Above this many ids a batch is selected as an id range (chunks of the full recompute are ranges).
RANGE_SELECT_MIN = 2000


@dataclass(frozen=True)
class CounterKey:
    """What an engagement rule counts; rules sharing a key share one SQL column."""

    kinds: tuple[int, ...]
    pattern: str = ""
    window_days: int | None = None
    half_life_days: float | None = None


@dataclass(frozen=True)
class RuleSpec:
    """A rule as the engine sees it: plain values, the fit value already typed."""

    id: int
    name: str
    category: str
    points: int
    reason: str
    field: str = ""
    operator: str = ""
    value: Any = None
    kinds: tuple[int, ...] = ()
    pattern: str = ""
    window_days: int | None = None
    threshold: int | None = None
    cap: int | None = None
    half_life_days: float | None = None
    detector: str = ""

    @classmethod
    def from_rule(cls, rule: Rule) -> RuleSpec:
        value = None
        if rule.category == Category.FIT:
            try:
                value = parse_value(rule.operator, rule.value, field_kind(rule.field) or "text")
            except ValueError:
                value = rule.value  # evaluation reports it; the other rules still run
        return cls(
            id=rule.pk,
            name=rule.name,
            category=rule.category,
            points=int(rule.points),
            reason=rule.reason,
            field=rule.field,
            operator=rule.operator,
            value=value,
            kinds=tuple(sorted(int(k) for k in (rule.kinds or []))),
            pattern=rule.pattern,
            window_days=rule.window_days,
            threshold=rule.threshold,
            cap=rule.cap,
            half_life_days=rule.half_life_days,
            detector=rule.detector,
        )

    @property
    def part(self) -> str:
        """Which half of the grade the points count toward: 'fit' or 'engagement'."""
        if self.category == Category.ENGAGEMENT:
            return "engagement"
        if self.category == Category.NEGATIVE and self.detector in detectors.COUNT_DETECTORS:
            return "engagement"
        return "fit"

    @property
    def counter(self) -> CounterKey | None:
        if self.category == Category.ENGAGEMENT:
            return CounterKey(self.kinds, self.pattern, self.window_days, self.half_life_days)
        if self.category == Category.NEGATIVE and self.detector in detectors.COUNT_DETECTORS:
            return CounterKey(detectors.COUNT_DETECTORS[self.detector], "", self.window_days, None)
        return None

    @property
    def lead_fields(self) -> tuple[str, ...]:
        if self.category == Category.FIT:
            return (self.field,)
        if self.category == Category.NEGATIVE and self.detector in detectors.TEXT_DETECTORS:
            return detectors.TEXT_DETECTORS[self.detector][1]
        return ()


@dataclass
class Counts:
    """Per lead of the batch: raw interaction count and decayed count, one pair per CounterKey."""

    raw: dict[CounterKey, np.ndarray] = field(default_factory=dict)
    weighted: dict[CounterKey, np.ndarray] = field(default_factory=dict)


@dataclass
class Evaluation:
    points: np.ndarray  # int64 [n_leads, n_rules]
    counts: dict[int, np.ndarray]  # rule id -> raw count per lead (engagement rules), for {count}
    failures: dict[int, str]  # rule id -> why it was skipped


@dataclass
class BatchScores:
    """Everything the writer stores for a batch, in batch order."""

    ids: np.ndarray
    rule_score: np.ndarray
    fit_score: np.ndarray
    engagement_score: np.ndarray
    grade: list[str]
    breakdown: list[str]  # JSON text
    failures: dict[int, str]


# ---------------------------------------------------------------------------------------- pure


def _text(column: np.ndarray) -> np.ndarray:
    return np.array(["" if v is None else str(v) for v in column], dtype=object)


# Several rules read the same column (job_title…): factorize it once per evaluation.
_FACTORIZED: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _by_unique(column: np.ndarray, predicate: Any) -> np.ndarray:
    if len(column) <= detectors.SMALL_BATCH:
        return np.fromiter((bool(predicate(v)) for v in column), dtype=bool, count=len(column))
    cached = _FACTORIZED.get(id(column))
    if cached is None or cached[0] is not column:
        codes, uniques = pd.factorize(column, use_na_sentinel=False)
        cached = (column, codes, uniques)
        _FACTORIZED[id(column)] = cached
    _, codes, uniques = cached
    flags = np.fromiter((bool(predicate(u)) for u in uniques), dtype=bool, count=len(uniques))
    return flags[codes] if len(column) else np.zeros(0, dtype=bool)


def _numbers(column: np.ndarray) -> np.ndarray:
    return pd.to_numeric(pd.Series(column, dtype=object), errors="coerce").to_numpy(dtype=float)


def fit_matches(spec: RuleSpec, column: np.ndarray) -> np.ndarray:
    """Which leads the fit rule applies to, given the values of its field (in batch order)."""
    kind = field_kind(spec.field)
    if kind is None:
        raise ValueError(f"unknown field {spec.field!r}")
    op, value = spec.operator, spec.value
    is_empty = _by_unique(
        column, lambda v: v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == ""
    )
    if op == "is_set":
        return ~is_empty
    if op == "is_empty":
        return is_empty
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"{spec.field} is yes/no; got {value!r}")
        return _by_unique(column, lambda v: v is not None and bool(v) == value)
    if op in ("gt", "lt", "between") or kind == "number":
        numbers = _numbers(column)
        with np.errstate(invalid="ignore"):
            if op == "gt":
                return numbers > float(value)
            if op == "lt":
                return numbers < float(value)
            if op == "between":
                low, high = value
                return (numbers >= float(low)) & (numbers <= float(high))
            if op == "equals":
                return numbers == float(value)
            if op == "not_equals":
                return ~(numbers == float(value))
            if op == "in":
                return np.isin(numbers, np.asarray(value, dtype=float))
        raise ValueError(f"operator {op!r} does not apply to a number field")
    # Text (and custom attributes compared as text): trimmed, case-insensitive.
    if op == "equals":
        wanted = str(value).strip().lower()
        return _by_unique(column, lambda v: v is not None and str(v).strip().lower() == wanted)
    if op == "not_equals":
        wanted = str(value).strip().lower()
        return _by_unique(column, lambda v: v is None or str(v).strip().lower() != wanted)
    if op == "in":
        wanted_set = {str(v).strip().lower() for v in value}
        return _by_unique(column, lambda v: v is not None and str(v).strip().lower() in wanted_set)
    if op == "contains":
        needle = str(value).strip().lower()
        return _by_unique(column, lambda v: v is not None and needle in str(v).lower())
    raise ValueError(f"unknown operator {op!r}")


def engagement_points(spec: RuleSpec, occurrences: np.ndarray) -> np.ndarray:
    """Whole points per lead from (possibly decayed) occurrence counts."""
    if spec.threshold is not None:
        return np.where(occurrences >= spec.threshold, spec.points, 0).astype(np.int64)
    raw = occurrences * spec.points
    points = np.sign(raw) * np.floor(np.abs(raw) + 0.5)  # half away from zero: 4.5 → 5, -4.5 → -5
    if spec.cap is not None:
        points = np.clip(points, -spec.cap, spec.cap)
    return points.astype(np.int64)


def evaluate(
    specs: Sequence[RuleSpec], columns: dict[str, np.ndarray], counts: Counts, n_leads: int
) -> Evaluation:
    """Points of every rule for every lead; a rule that raises is reported and scores 0 for everyone."""
    _FACTORIZED.clear()
    points = np.zeros((n_leads, len(specs)), dtype=np.int64)
    raw_counts: dict[int, np.ndarray] = {}
    failures: dict[int, str] = {}
    for j, spec in enumerate(specs):
        try:
            if spec.category == Category.FIT:
                points[:, j] = np.where(fit_matches(spec, columns[spec.field]), spec.points, 0)
            elif spec.counter is not None and spec.category == Category.ENGAGEMENT:
                key = spec.counter
                occurrences = counts.weighted[key] if spec.half_life_days else counts.raw[key]
                points[:, j] = engagement_points(spec, occurrences)
                raw_counts[spec.id] = counts.raw[key]
            elif spec.counter is not None:  # an interaction-based spam signal
                hit = counts.raw[spec.counter] >= 1
                points[:, j] = np.where(hit, spec.points, 0)
                raw_counts[spec.id] = counts.raw[spec.counter]
            elif spec.detector in detectors.TEXT_DETECTORS:
                inputs = [columns[name] for name in detectors.TEXT_DETECTORS[spec.detector][1]]
                points[:, j] = np.where(detectors.flag_column(spec.detector, inputs), spec.points, 0)
            else:
                raise ValueError(f"rule of category {spec.category!r} cannot be evaluated")
        except Exception as exc:
            # A broken rule is reported and skipped; it must not stop everyone's recompute.
            logger.exception("Scoring rule %s (%s) failed and was skipped", spec.id, spec.name)
            points[:, j] = 0
            failures[spec.id] = f"{type(exc).__name__}: {exc}"
    _FACTORIZED.clear()
    return Evaluation(points=points, counts=raw_counts, failures=failures)


def grades(fit: np.ndarray, engagement: np.ndarray, bands: Sequence[tuple[str, str, float]]) -> list[str]:
    """'A2'-style grade per lead: fit letter + engagement digit from the bands (dimension, label, min)."""
    parts = []
    for dimension, score in ((GradeDimension.FIT, fit), (GradeDimension.ENGAGEMENT, engagement)):
        mine = sorted((b for b in bands if b[0] == dimension), key=lambda b: b[2])
        if not mine:
            parts.append(np.full(len(score), "", dtype=object))
            continue
        mins = np.array([b[2] for b in mine], dtype=float)
        labels = np.array([b[1] for b in mine], dtype=object)
        # The band whose minimum is the highest one not above the score; below all bands: the lowest.
        index = np.clip(np.searchsorted(mins, score, side="right") - 1, 0, len(mine) - 1)
        parts.append(labels[index])
    return [f + e for f, e in zip(parts[0], parts[1], strict=True)]


class _Reasons:
    """JSON text of breakdown entries, cached per (rule, points, count): few distinct ones exist."""

    def __init__(self, spec: RuleSpec) -> None:
        self.spec = spec
        self.uses_count = "{count}" in spec.reason
        # Keys in PostgreSQL's jsonb order (shorter first), so this text equals the stored
        # score_breakdown::text and a full recompute can skip unchanged leads by comparing hashes.
        self.head = f'{{"rule": {json.dumps(spec.name, ensure_ascii=False)}, "points": '
        self.tail = f', "rule_id": {spec.id}, "category": {json.dumps(spec.category, ensure_ascii=False)}}}'

        self.cache: dict[tuple[int, float], str] = {}

    def entry(self, points: int, count: float) -> str:
        key = (points, count if self.uses_count else 0.0)
        text = self.cache.get(key)
        if text is None:
            shown = f"{count:.1f}".rstrip("0").rstrip(".")
            try:
                reason = self.spec.reason.format(count=shown, points=f"{points:+d}")
            except (KeyError, IndexError, ValueError):
                reason = self.spec.reason
            text = f'{self.head}{points}, "reason": {json.dumps(reason, ensure_ascii=False)}{self.tail}'
            self.cache[key] = text
        return text


def breakdown_json(specs: Sequence[RuleSpec], evaluation: Evaluation) -> list[str]:
    """The breakdown of each lead as JSON text: each rule that gave points, its points and reason."""
    points = evaluation.points
    n_leads = points.shape[0]
    cells = np.empty(points.shape, dtype=object)
    for j, spec in enumerate(specs):
        fired = np.flatnonzero(points[:, j])
        if not len(fired):
            continue
        reasons = _Reasons(spec)
        counts = evaluation.counts.get(spec.id)
        fired_points = points[fired, j].astype(np.int64)
        key = fired_points * 10
        if reasons.uses_count and counts is not None:
            # Few distinct (points, count) pairs exist: build each entry's JSON once, then scatter it.
            key = fired_points * 100_000_000 + np.rint(counts[fired] * 10).astype(np.int64)
        distinct, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        shown = np.round(counts[fired], 1) if counts is not None else np.zeros(len(fired))
        texts = np.array(
            [reasons.entry(int(fired_points[i]), float(shown[i])) for i in first.tolist()], dtype=object
        )
        cells[fired, j] = texts[inverse.reshape(-1)]
    # Walk only the fired cells, row by row (np.nonzero is row-major).
    rows, cols = np.nonzero(points)
    flat = cells[rows, cols].tolist()
    per_lead = np.bincount(rows, minlength=n_leads).tolist()
    out = []
    start = 0
    for n in per_lead:
        out.append("[" + ", ".join(flat[start : start + n]) + "]")
        start += n
    return out


def summarize(
    ids: np.ndarray,
    specs: Sequence[RuleSpec],
    evaluation: Evaluation,
    bands: Sequence[tuple[str, str, float]],
) -> BatchScores:
    """Scores, grade and breakdown from rule points: the breakdown sums to the score exactly."""
    is_fit = np.array([s.part == "fit" for s in specs], dtype=bool)
    points = evaluation.points
    fit = points[:, is_fit].sum(axis=1).astype(float) if len(specs) else np.zeros(len(ids))
    engagement = points[:, ~is_fit].sum(axis=1).astype(float) if len(specs) else np.zeros(len(ids))
    return BatchScores(
        ids=ids,
        rule_score=fit + engagement,
        fit_score=fit,
        engagement_score=engagement,
        grade=grades(fit, engagement, bands),
        breakdown=breakdown_json(specs, evaluation),
        failures=evaluation.failures,
    )


# ------------------------------------------------------------------------------------ queries


def _lead_filter(column: str, ids: np.ndarray) -> tuple[str, dict[str, Any]]:
    if len(ids) >= RANGE_SELECT_MIN:
        return f"{column} BETWEEN %(low)s AND %(high)s", {"low": int(ids[0]), "high": int(ids[-1])}
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%(ids)s)", {"ids": [int(i) for i in ids]}
    names = [f"id{i}" for i in range(len(ids))]
    return f"{column} IN ({', '.join(f'%({n})s' for n in names)})", dict(
        zip(names, map(int, ids), strict=True)
    )


def _lead_selects(names: Sequence[str], vendor: str) -> tuple[list[str], dict[str, Any]]:
    selects: list[str] = []
    params: dict[str, Any] = {}
    for i, name in enumerate(names):
        if name.startswith("custom."):
            key = name.split(".", 1)[1]
            if vendor == "postgresql":
                selects.append(f"l.custom ->> %(key{i})s")
                params[f"key{i}"] = key
            else:
                selects.append(f"json_extract(l.custom, %(key{i})s)")
                params[f"key{i}"] = f'$."{key}"'
        elif field_kind(name) == "text":
            selects.append(f"COALESCE(l.{connection.ops.quote_name(name)}, '')")
        else:
            selects.append("l." + connection.ops.quote_name(name))
    return selects, params


# A rule's pattern matches the payload's "url", "subject" or "name" (a custom event's name).
PATTERN_KEYS = ("url", "subject", "name")


def _age_and_pattern_sql(vendor: str) -> tuple[str, str]:
    if vendor == "postgresql":
        age = "(%(today)s::date - (occurred_at AT TIME ZONE 'UTC')::date)"
        tests = [f"payload ->> '{key}' ILIKE {{p}} ESCAPE '\\'" for key in PATTERN_KEYS]
    else:
        age = "CAST(julianday(%(today)s) - julianday(date(occurred_at)) AS INTEGER)"
        tests = [f"json_extract(payload, '$.{key}') LIKE {{p}} ESCAPE '\\'" for key in PATTERN_KEYS]
    return age, f"({' OR '.join(tests)})"


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def counts_sql(
    keys: Sequence[CounterKey], lead_where: str, *, vendor: str, today: date, since: datetime | None
) -> tuple[str, dict[str, Any]]:
    """The aggregate: per lead, one count and (for decayed rules) one decayed sum per CounterKey,
    each a FILTERed aggregate over the batch's interactions: GROUP BY lead_id only.

    A window of N days is a plain timestamp bound (occurred_at ≥ the start of the day N-1 days ago);
    the age in days (for exp() decay) is computed only for rows a decayed rule counts. Measured on
    PostgreSQL 15: grouping by (lead, kind, day) first was 2× slower, as nearly every (lead, kind, day)
    holds one event.
    """
    age_sql, pattern_sql = _age_and_pattern_sql(vendor)
    params: dict[str, Any] = {"today": today if vendor == "postgresql" else today.isoformat()}
    cols: list[str] = []
    for key in keys:
        conditions = [f"kind IN ({', '.join(str(int(k)) for k in key.kinds)})"]
        if key.window_days is not None:
            name = f"from{int(key.window_days)}"
            params[name] = connection.ops.adapt_datetimefield_value(
                _day_start(today - timedelta(days=int(key.window_days) - 1))
            )
            conditions.append(f"occurred_at >= %({name})s")
        if key.pattern:
            name = f"pattern{sorted({k.pattern for k in keys if k.pattern}).index(key.pattern)}"
            params[name] = _like(key.pattern)
            conditions.append(pattern_sql.format(p=f"%({name})s"))
        cond = " AND ".join(conditions)
        cols.append(f"COUNT(*) FILTER (WHERE {cond}) AS c{len(cols)}")
        if key.half_life_days:
            rate = -math.log(2) / float(key.half_life_days)
            cols.append(f"COALESCE(SUM(EXP({rate!r} * {age_sql})) FILTER (WHERE {cond}), 0) AS c{len(cols)}")
    where = lead_where
    if since is not None:
        params["since"] = connection.ops.adapt_datetimefield_value(since)
        where += " AND occurred_at >= %(since)s"
    sql = f"SELECT lead_id, {', '.join(cols)} FROM {INTERACTION_TABLE} WHERE {where} GROUP BY lead_id"
    return sql, params


def _since(keys: Sequence[CounterKey], today: date) -> datetime | None:
    """Oldest moment any rule looks at (None when a rule counts all time)."""
    windows = [k.window_days for k in keys if k.window_days is not None]
    if not keys or len(windows) < len(keys):
        return None
    return _day_start(today - timedelta(days=max(windows) - 1))


def batch_sql(
    ids: np.ndarray | None,
    names: Sequence[str],
    keys: Sequence[CounterKey],
    *,
    now: datetime,
    counts_table: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """ONE query for a batch: the rules' lead fields, LEFT JOINed to the interaction aggregate
    (or to `counts_table`, where a full recompute has stored that aggregate already)."""
    vendor = connection.vendor
    selects, params = _lead_selects(names, vendor)
    lead_where, lead_params = _lead_filter("l.id", ids) if ids is not None else ("TRUE", {})
    params.update(lead_params)
    fields = "".join(", " + x for x in selects)
    if not keys:
        return f"SELECT l.id{fields} FROM {LEAD_TABLE} AS l WHERE {lead_where} ORDER BY l.id", params
    if counts_table is None:
        today = now.astimezone(UTC).date()
        counts_where = _lead_filter("lead_id", ids)[0] if ids is not None else "TRUE"
        inner, inner_params = counts_sql(
            keys, counts_where, vendor=vendor, today=today, since=_since(keys, today)
        )
        params.update(inner_params)
        source = f"({inner})"
    else:
        source = counts_table
    width = sum(2 if k.half_life_days else 1 for k in keys)
    counter_cols = ", ".join(f"c.c{j}" for j in range(width))
    sql = (
        f"SELECT l.id{fields}, {counter_cols} "
        f"FROM {LEAD_TABLE} AS l LEFT JOIN {source} AS c ON c.lead_id = l.id "
        f"WHERE {lead_where} ORDER BY l.id"
    )
    return sql, params


def load_specs(rules: Sequence[Rule] | None = None) -> list[RuleSpec]:
    """The active rules in a stable order (fit, then engagement, then negative; by id)."""
    if rules is None:
        rules = list(Rule.objects.filter(active=True).order_by("id"))
    order: dict[str, int] = {Category.FIT: 0, Category.ENGAGEMENT: 1, Category.NEGATIVE: 2}
    return [RuleSpec.from_rule(r) for r in sorted(rules, key=lambda r: (order.get(r.category, 9), r.pk))]


def load_bands() -> list[tuple[str, str, float]]:
    return list(GradeBand.objects.values_list("dimension", "label", "min_score"))


_RULE_SET_CACHE: dict[tuple[Any, ...], tuple[list[RuleSpec], list[tuple[str, str, float]]]] = {}
_RULE_SET_VERSION_SQL = (
    f"SELECT (SELECT COUNT(*) FROM {RULE_TABLE}), (SELECT MAX(updated_at) FROM {RULE_TABLE}), "
    f"(SELECT SUM(id) FROM {RULE_TABLE}), (SELECT COUNT(*) FROM {BAND_TABLE}), "
    f"(SELECT SUM(id) FROM {BAND_TABLE}), (SELECT SUM(min_score) FROM {BAND_TABLE})"
)


def load_rule_set() -> tuple[list[RuleSpec], list[tuple[str, str, float]]]:
    """Active rules and grade bands, cached per process until any rule or band changes.

    One tiny version query instead of loading ~30 model instances keeps a single-lead rescore
    well under its 20 ms budget. Every rule save bumps `updated_at`, so edits are seen at once.
    """
    with connection.cursor() as cursor:
        cursor.execute(_RULE_SET_VERSION_SQL)
        version = (connection.alias, *cursor.fetchone())
    cached = _RULE_SET_CACHE.get(version)
    if cached is None:
        cached = (load_specs(), load_bands())
        _RULE_SET_CACHE.clear()
        _RULE_SET_CACHE[version] = cached
    return cached


@dataclass
class BatchInputs:
    """What the two queries return for a batch: the rules' lead fields and interaction counts."""

    ids: np.ndarray
    columns: dict[str, np.ndarray]
    counts: Counts
    # What is stored now (PostgreSQL full recompute): numeric score fields and text hashes, to skip
    # leads whose scores would not change before anything is sent back.
    stored: dict[str, np.ndarray] | None = None


STORED_COLUMNS = (
    "rule_score",
    "fit_score",
    "engagement_score",
    "grade",
    "ml_probability",
    "priority",
    "unscored",
    "breakdown_md5",
    "factors_md5",
)
_STORED_FLOATS = {"rule_score", "fit_score", "engagement_score", "ml_probability", "priority"}
STORED_SQL = (
    "l.rule_score, l.fit_score, l.engagement_score, l.grade, l.ml_probability, l.priority, "
    "l.scored_at IS NULL, md5(l.score_breakdown::text), md5(l.ml_factors::text)"
)


def _rule_inputs(specs: Sequence[RuleSpec]) -> tuple[list[str], list[CounterKey]]:
    names = sorted({name for spec in specs for name in spec.lead_fields if field_kind(name) is not None})
    keys = list(dict.fromkeys(spec.counter for spec in specs if spec.counter is not None))
    return names, keys


def _inputs_from_rows(
    ids: np.ndarray, rows: Sequence[tuple[Any, ...]], names: Sequence[str], keys: Sequence[CounterKey]
) -> BatchInputs:
    width = sum(2 if k.half_life_days else 1 for k in keys)
    columns = {name: np.full(len(ids), None, dtype=object) for name in names}
    matrix = np.zeros((len(ids), width))
    if rows:
        table = list(zip(*rows, strict=True))  # one tuple per column, at C speed
        row_ids = np.array(table[0], dtype=np.int64)
        position = np.searchsorted(ids, row_ids)
        keep = (position < len(ids)) & (ids[np.minimum(position, len(ids) - 1)] == row_ids)
        everything = bool(keep.all()) and len(rows) == len(ids)
        for j, name in enumerate(names, start=1):
            values = np.empty(len(rows), dtype=object)
            values[:] = table[j]
            if everything:
                columns[name] = values
            else:
                columns[name][position[keep]] = values[keep]
        if width:
            data = np.array(table[1 + len(names) :], dtype=float).T  # NULL (no interactions) -> nan
            matrix[position[keep]] = np.nan_to_num(data[keep])
    for name in names:
        kind = field_kind(name)
        if kind == "number":
            columns[name] = np.array(columns[name], dtype=float)  # None -> nan
        elif kind == "text":
            columns[name] = np.where(pd.isna(columns[name]), "", columns[name]).astype(object)
    counts = Counts()
    j = 0
    for key in keys:
        counts.raw[key] = matrix[:, j]
        counts.weighted[key] = matrix[:, j + 1] if key.half_life_days else matrix[:, j]
        j += 2 if key.half_life_days else 1
    return BatchInputs(ids, columns, counts)


def fetch_batch(ids: np.ndarray, specs: Sequence[RuleSpec], *, now: datetime) -> BatchInputs:
    """The batch's lead fields and interaction counts, in one round trip (ids sorted ascending)."""
    ids = np.asarray(ids, dtype=np.int64)
    names, keys = _rule_inputs(specs)
    rows: list[tuple[Any, ...]] = []
    if len(ids):
        sql, params = batch_sql(ids, names, keys, now=now)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    return _inputs_from_rows(ids, rows, names, keys)


COUNTS_TABLE = "scoring_recompute_counts"  # a temp table: private to the recompute's connection


def stream_batches(
    specs: Sequence[RuleSpec], *, now: datetime, chunk_size: int
) -> Generator[BatchInputs, None, None]:
    """Every lead, chunk by chunk, from ONE query read through a server-side cursor (PostgreSQL).

    A full recompute reads the interaction table once: per-chunk range queries re-read most of its
    pages each time, because a lead's interactions are spread over the whole table.
    """
    names, keys = _rule_inputs(specs)
    postgres = connection.vendor == "postgresql"
    counts_table = COUNTS_TABLE if postgres and keys else None
    sql, params = batch_sql(None, names, keys, now=now, counts_table=counts_table)
    if postgres:
        sql = sql.replace("SELECT l.id", f"SELECT l.id, {STORED_SQL}", 1)
        with connection.cursor() as cursor:
            # JIT compiles this big aggregate for seconds and gains nothing; sorts need room.
            cursor.execute("SET jit = off; SET work_mem = '512MB'")
            if counts_table:
                # The aggregate first, as a plain statement: PostgreSQL runs it as a parallel hash
                # aggregate (a cursor over the joined query gets a serial plan and took 3× longer).
                today = now.astimezone(UTC).date()
                inner, inner_params = counts_sql(
                    keys, "TRUE", vendor="postgresql", today=today, since=_since(keys, today)
                )
                cursor.execute(f"DROP TABLE IF EXISTS {counts_table}")
                cursor.execute(f"CREATE TEMP TABLE {counts_table} AS {inner}", inner_params)
                cursor.execute(f"ANALYZE {counts_table}")
    try:
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(chunk_size):
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                if not postgres:
                    yield _inputs_from_rows(ids, rows, names, keys)
                    continue
                width = len(STORED_COLUMNS)
                stored_table = list(zip(*(r[1 : 1 + width] for r in rows), strict=True))
                inputs = _inputs_from_rows(ids, [(r[0], *r[1 + width :]) for r in rows], names, keys)
                inputs.stored = {
                    name: np.array(values, dtype=float if name in _STORED_FLOATS else object)
                    for name, values in zip(STORED_COLUMNS, stored_table, strict=True)
                }
                yield inputs
    finally:
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("RESET jit; RESET work_mem")
                if counts_table:
                    cursor.execute(f"DROP TABLE IF EXISTS {counts_table}")


def evaluate_batch(ids: np.ndarray, specs: Sequence[RuleSpec], *, now: datetime) -> Evaluation:
    """Run both queries for a batch of lead ids (sorted) and evaluate every rule."""
    inputs = fetch_batch(ids, specs, now=now)
    return evaluate(specs, inputs.columns, inputs.counts, len(inputs.ids))


def score_inputs(
    inputs: BatchInputs, specs: Sequence[RuleSpec], bands: Sequence[tuple[str, str, float]]
) -> BatchScores:
    """Rule scores, grades and breakdowns from fetched inputs (pure)."""
    return summarize(
        inputs.ids, specs, evaluate(specs, inputs.columns, inputs.counts, len(inputs.ids)), bands
    )


def score_batch(
    ids: np.ndarray,
    specs: Sequence[RuleSpec],
    bands: Sequence[tuple[str, str, float]],
    *,
    now: datetime,
) -> BatchScores:
    """Rule scores, grades and breakdowns of a batch of leads (ids sorted ascending)."""
    return score_inputs(fetch_batch(ids, specs, now=now), specs, bands)
