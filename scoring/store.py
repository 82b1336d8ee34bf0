"""The one writer of score fields: bulk, set-based writes of a scored batch.

Everything a score write touches is named from the models' `_meta` (no table literals):
- the event path (a few leads): one `UPDATE … FROM (VALUES …)` statement, one round trip;
- a batch (PostgreSQL): COPY into a per-connection temp table, then the same `UPDATE … FROM`,
  which skips rows whose scores did not change;
- a full recompute: a per-run UNLOGGED stage table applied in one transaction at the end, so old
  scores are served until the new ones are complete;
- SQLite (the embedded shape): one executemany after comparing with what is stored.
Each write also appends a ScoreSnapshot row for every lead whose score changed (the score history).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection, transaction

from leadcrm.models import SCORE_FIELDS, Lead
from leadcrm.signals import grades_changed
from scoring import engine
from scoring.models import ScoreSnapshot

LEAD_TABLE = Lead._meta.db_table
SNAPSHOT_TABLE = ScoreSnapshot._meta.db_table


@dataclass
class ScoreRows:
    """A scored batch with its model probability and queue priority, ready to write."""

    scores: engine.BatchScores
    ml_probability: np.ndarray  # NaN where the model gave none
    ml_factors: list[str]  # JSON text
    priority: np.ndarray

    def __len__(self) -> int:
        return len(self.scores.ids)

    def subset(self, mask: np.ndarray) -> ScoreRows:
        s = self.scores
        keep = np.flatnonzero(mask).tolist()
        return ScoreRows(
            engine.BatchScores(
                ids=s.ids[mask],
                rule_score=s.rule_score[mask],
                fit_score=s.fit_score[mask],
                engagement_score=s.engagement_score[mask],
                grade=[s.grade[i] for i in keep],
                breakdown=[s.breakdown[i] for i in keep],
                failures=s.failures,
            ),
            self.ml_probability[mask],
            [self.ml_factors[i] for i in keep],
            self.priority[mask],
        )

    def changed_from(self, stored: dict[str, np.ndarray]) -> np.ndarray:
        """Which leads' stored scores differ from these (compared before anything is sent back)."""
        s = self.scores
        changed = stored["unscored"].astype(bool)
        for name, mine in (
            ("rule_score", s.rule_score),
            ("fit_score", s.fit_score),
            ("engagement_score", s.engagement_score),
            ("priority", self.priority),
        ):
            changed |= stored[name] != mine
        old_p, new_p = stored["ml_probability"], self.ml_probability
        changed |= ~((old_p == new_p) | (np.isnan(old_p) & np.isnan(new_p)))
        changed |= stored["grade"] != np.array(s.grade, dtype=object)
        for i in np.flatnonzero(~changed).tolist():
            # Same numbers: the reasons may still differ (a rule renamed, a count moved under a cap).
            if (
                hashlib.md5(s.breakdown[i].encode(), usedforsecurity=False).hexdigest()
                != stored["breakdown_md5"][i]
                or hashlib.md5(self.ml_factors[i].encode(), usedforsecurity=False).hexdigest()
                != stored["factors_md5"][i]
            ):
                changed[i] = True
        return changed

    def tuples(self) -> Iterable[tuple[Any, ...]]:
        s = self.scores
        probability = [None if math.isnan(p) else p for p in self.ml_probability.tolist()]
        return zip(
            s.ids.tolist(),
            s.rule_score.tolist(),
            s.fit_score.tolist(),
            s.engagement_score.tolist(),
            s.grade,
            s.breakdown,
            probability,
            self.ml_factors,
            self.priority.tolist(),
            strict=True,
        )


_STAGE_COLUMNS = (
    "id bigint PRIMARY KEY, rule_score float8, fit_score float8, engagement_score float8, "
    "grade varchar(4), score_breakdown jsonb, ml_probability float8, ml_factors jsonb, priority float8"
)
_NUMERIC = ("rule_score", "fit_score", "engagement_score", "grade", "ml_probability", "priority")


def _escape(text: str) -> str:
    # COPY text format: backslash is the escape character (json.dumps writes \u2013 and the like);
    # JSON text never holds a raw tab or newline.
    return text.replace("\\", "\\\\") if "\\" in text else text


_NULL = "\\N"


def _copy_rows(table: str, rows: ScoreRows) -> None:
    lines = [
        f"{i}\t{r!r}\t{f!r}\t{e!r}\t{g}\t{_escape(b)}\t{_NULL if p is None else repr(p)}\t{_escape(m)}\t{pr!r}"
        for i, r, f, e, g, b, p, m, pr in rows.tuples()
    ]
    if not lines:
        return
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} FROM STDIN") as copy:
        step = 20_000
        for start in range(0, len(lines), step):
            copy.write("\n".join(lines[start : start + step]) + "\n")


def _apply_stage_sql(source: str, *, touch: bool, only_scored_before: bool) -> str:
    numeric_old = ", ".join(f"old.{c}" for c in _NUMERIC)
    numeric_new = ", ".join(f"s.{c}" for c in _NUMERIC)
    score_changed = f"(old.scored_at IS NULL OR ({numeric_old}) IS DISTINCT FROM ({numeric_new}))"
    changed = (
        f"({score_changed} OR old.score_breakdown IS DISTINCT FROM s.score_breakdown "
        f"OR old.ml_factors IS DISTINCT FROM s.ml_factors)"
    )
    where = "TRUE" if touch else changed
    if only_scored_before:
        # Leads rescored by an event while this recompute ran already carry a newer score.
        where += " AND (old.scored_at IS NULL OR old.scored_at < %(since)s)"
    sets = ", ".join(f"{c} = s.{c}" for c in SCORE_FIELDS if c != "scored_at")
    return f"""
        WITH updated AS (
            UPDATE {LEAD_TABLE} AS l SET {sets}, scored_at = %(now)s
            FROM {source} JOIN {LEAD_TABLE} AS old ON old.id = s.id
            WHERE l.id = s.id AND {where}
            RETURNING l.id, s.rule_score, s.fit_score, s.engagement_score, s.grade, s.ml_probability,
                      s.priority, {score_changed} AS score_changed, old.grade AS old_grade
        ), snapshots AS (
            INSERT INTO {SNAPSHOT_TABLE}
                (lead_id, taken_at, rule_score, fit_score, engagement_score, grade, ml_probability, priority)
            SELECT id, %(now)s, rule_score, fit_score, engagement_score, grade, ml_probability, priority
            FROM updated WHERE score_changed
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM snapshots),
               (SELECT coalesce(json_agg(json_build_array(id, old_grade, grade)), '[]'::json)
                  FROM updated WHERE old_grade IS DISTINCT FROM grade)
    """


_VALUES_TYPES = ("bigint", "float8", "float8", "float8", "varchar", "jsonb", "float8", "jsonb", "float8")
VALUES_WRITE_MAX = 200


def _write_values(rows: ScoreRows, *, now: datetime, touch: bool) -> int:
    """The event path (a few leads): the same UPDATE … FROM with the rows inline, sent as ONE
    statement string, so it is one round trip and its own transaction. COPY into a temp table
    costs five round trips, which dominate a single-lead rescore."""
    params: dict[str, Any] = {"now": now, "since": None}
    tuples = []
    for i, row in enumerate(rows.tuples()):
        cells = []
        for j, (value, sql_type) in enumerate(zip(row, _VALUES_TYPES, strict=True)):
            params[f"v{i}_{j}"] = value
            cells.append(f"%(v{i}_{j})s::{sql_type}")
        tuples.append(f"({', '.join(cells)})")
    source = (
        f"(VALUES {', '.join(tuples)}) AS s(id, rule_score, fit_score, engagement_score, grade, "
        "score_breakdown, ml_probability, ml_factors, priority)"
    )
    # Scores are derived data the sweep can recompute: no need to wait for the WAL flush.
    sql = "SET LOCAL synchronous_commit TO OFF; " + _apply_stage_sql(
        source, touch=touch, only_scored_before=False
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.nextset()  # the first result is the SET's
        changed, grades = cursor.fetchone()
    _grades_moved(grades)
    return int(changed)


def _apply_stage(table: str, *, now: datetime, touch: bool, since: datetime | None = None) -> int:
    sql = _apply_stage_sql(f"{table} AS s", touch=touch, only_scored_before=since is not None)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"now": now, "since": since})
        changed, grades = cursor.fetchone()
    _grades_moved(grades)
    return int(changed)


def _grades_moved(changes: list[Any]) -> None:
    """Tell apps above (webhooks: grade changed, became hot) which grades this write moved: one
    signal per write with every (lead id, old grade, new grade), found by the write itself."""
    if changes:
        grades_changed.send(sender=Lead, changes=[(int(i), old or "", new or "") for i, old, new in changes])


def _write(rows: ScoreRows, *, now: datetime, touch: bool) -> int:
    """Store a batch in one bulk write (inside the caller's transaction); returns leads whose score changed."""
    if not len(rows):
        return 0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Scores are derived data the sweep can recompute: no need to wait for the WAL flush.
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
            # One temp table per connection, emptied at commit: no catalog churn per rescore.
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS scoring_stage ({_STAGE_COLUMNS}) ON COMMIT DELETE ROWS"
            )
        _copy_rows("scoring_stage", rows)
        changed = _apply_stage("scoring_stage", now=now, touch=touch)
        with connection.cursor() as cursor:
            # Emptied at commit anyway; this covers callers that nest us in a longer transaction.
            cursor.execute("DELETE FROM scoring_stage")
        return changed
    return _write_generic(list(rows.tuples()), now=now, touch=touch)


def _write_generic(
    tuples: list[tuple[Any, ...]], *, now: datetime, touch: bool, since: datetime | None = None
) -> int:
    """SQLite (embedded shape): compare with what is stored, one executemany UPDATE, snapshot rows."""
    current: dict[int, tuple[Any, ...]] = {}
    ids = [t[0] for t in tuples]
    for start in range(0, len(ids), 500):
        for row in Lead.objects.filter(pk__in=ids[start : start + 500]).values_list(
            "id", *_NUMERIC, "score_breakdown", "ml_factors", "scored_at"
        ):
            current[row[0]] = row[1:]
    updates: list[tuple[Any, ...]] = []
    snapshots: list[ScoreSnapshot] = []
    grades: list[tuple[int, str, str]] = []
    for lead_id, rule, fit, eng, grade, breakdown, prob, factors, priority in tuples:
        old = current.get(lead_id)
        if old is None:
            continue  # deleted meanwhile
        if since is not None and old[8] is not None and old[8] >= since:
            continue
        score_changed = old[8] is None or tuple(old[:6]) != (rule, fit, eng, grade, prob, priority)
        changed = score_changed or old[6] != json.loads(breakdown) or old[7] != json.loads(factors)
        if not (touch or changed):
            continue
        updates.append((rule, fit, eng, grade, breakdown, prob, factors, priority, now, lead_id))
        if old[3] != grade:
            grades.append((lead_id, old[3], grade))
        if score_changed:
            snapshots.append(
                ScoreSnapshot(
                    lead_id=lead_id,
                    taken_at=now,
                    rule_score=rule,
                    fit_score=fit,
                    engagement_score=eng,
                    grade=grade,
                    ml_probability=prob,
                    priority=priority,
                )
            )
    if updates:
        now_db = connection.ops.adapt_datetimefield_value(now)
        updates = [(*u[:8], now_db, u[9]) for u in updates]
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {LEAD_TABLE} SET rule_score = %s, fit_score = %s, engagement_score = %s, grade = %s, "
                "score_breakdown = %s, ml_probability = %s, ml_factors = %s, priority = %s, scored_at = %s "
                "WHERE id = %s",
                updates,
            )
    ScoreSnapshot.objects.bulk_create(snapshots, batch_size=1000)
    _grades_moved(grades)
    return len(snapshots)


def write_scores(rows: ScoreRows, *, now: datetime) -> int:
    """Store a scored batch (event path or sweep); returns how many leads' scores changed."""
    if connection.vendor == "postgresql" and len(rows) <= VALUES_WRITE_MAX:
        return _write_values(rows, now=now, touch=True)
    with transaction.atomic():
        return _write(rows, now=now, touch=True)


STAGE_PREFIX = f"{ScoreSnapshot._meta.app_label}_recompute_stage_"


def drop_orphan_stages(*, keep: Sequence[int]) -> list[str]:
    """Drop stage tables left by recomputes whose worker died (those of running runs are kept)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE %s",
            [STAGE_PREFIX.replace("_", r"\_") + "%"],
        )
        keep_names = {f"{STAGE_PREFIX}{run_id}" for run_id in keep}
        orphans = [name for (name,) in cursor.fetchall() if name not in keep_names]
        for name in orphans:
            cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
    return orphans


class RecomputeStage:
    """Where a full recompute collects its chunks so old scores are served until it finishes."""

    def __init__(self, run_id: int) -> None:
        self.postgres = connection.vendor == "postgresql"
        self.table = f"{STAGE_PREFIX}{run_id}"
        self.rows: list[tuple[Any, ...]] = []
        if self.postgres:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
                # UNLOGGED: scratch data; a crash just means the run is redone.
                cursor.execute(f"CREATE UNLOGGED TABLE {self.table} ({_STAGE_COLUMNS})")

    def add(self, rows: ScoreRows) -> None:
        if self.postgres:
            with transaction.atomic():
                _copy_rows(self.table, rows)
        else:
            self.rows.extend(rows.tuples())

    def apply(self, *, now: datetime, since: datetime) -> int:
        if self.postgres:
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {self.table}")
                # Inside the apply transaction: no JIT (seconds of compiling), room for the join.
                cursor.execute("SET LOCAL jit = off; SET LOCAL work_mem = '256MB'")
            return _apply_stage(self.table, now=now, touch=False, since=since)
        return _write_generic(self.rows, now=now, touch=False, since=since)

    def drop(self) -> None:
        if self.postgres:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {self.table}")


# --- Rescore requests: when a lead's data changed and its score has not caught up yet -------------


def mark_rescore_requested(lead_id: int, *, now: datetime) -> bool:
    """Note a change; True when it is the first since the lead's last score (queue one task then)."""
    leads = Lead.objects.filter(pk=lead_id)
    if leads.filter(rescore_requested_at__isnull=True).update(rescore_requested_at=now):
        return True
    leads.update(rescore_requested_at=now)  # a task is queued; tell it to look again
    return False


def mark_rescores_requested(lead_ids: Sequence[int], *, now: datetime) -> list[int]:
    """`mark_rescore_requested` for many leads in one statement per 5,000 (PostgreSQL; two on
    SQLite); returns the newly marked ids (the ones with no rescore pending, which need a task)."""
    ids = sorted({int(i) for i in lead_ids})
    if not ids:
        return []
    table = connection.ops.quote_name(Lead._meta.db_table)
    column = connection.ops.quote_name(Lead._meta.get_field("rescore_requested_at").column)
    pk = connection.ops.quote_name(Lead._meta.pk.column)
    fresh: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            if connection.vendor == "postgresql":
                # One UPDATE: the rows are locked in id order (no deadlock with another batch over
                # the same leads), and each says whether it had no request pending before.
                cursor.execute(
                    f"UPDATE {table} AS l SET {column} = %s FROM (SELECT {pk}, {column} IS NULL AS fresh "
                    f"FROM {table} WHERE {pk} = ANY(%s::bigint[]) ORDER BY {pk} FOR NO KEY UPDATE) AS o "
                    f"WHERE l.{pk} = o.{pk} RETURNING l.{pk}, o.fresh",
                    [now, chunk],
                )
                fresh.extend(row[0] for row in cursor.fetchall() if row[1])
                continue
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"UPDATE {table} SET {column} = %s WHERE {pk} IN ({marks}) AND {column} IS NULL RETURNING {pk}",
                [now, *chunk],
            )
            new = {row[0] for row in cursor.fetchall()}
            fresh.extend(new)
            pending = [i for i in chunk if i not in new]
            if pending:  # a task is queued for these; tell it to look again
                marks = ", ".join(["%s"] * len(pending))
                cursor.execute(f"UPDATE {table} SET {column} = %s WHERE {pk} IN ({marks})", [now, *pending])
    return sorted(fresh)


def clear_rescore_request(lead_id: int, *, requested_at: datetime) -> bool:
    """Clear the request a rescore served; False when a newer change arrived meanwhile."""
    return bool(
        Lead.objects.filter(pk=lead_id, rescore_requested_at=requested_at).update(rescore_requested_at=None)
    )


def clear_unchanged_rescore_requests(requested: Mapping[int, datetime]) -> list[int]:
    """Clear each lead's request if it still is the one read before scoring (one statement per
    1,000 leads); returns the leads whose request moved meanwhile, sorted."""
    table = connection.ops.quote_name(Lead._meta.db_table)
    column = connection.ops.quote_name(Lead._meta.get_field("rescore_requested_at").column)
    pk = connection.ops.quote_name(Lead._meta.pk.column)
    row = "(%s::bigint, %s::timestamptz)" if connection.vendor == "postgresql" else "(%s, %s)"
    adapt = connection.ops.adapt_datetimefield_value
    items = sorted(requested.items())
    cleared: set[int] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            params: list[Any] = []
            for lead_id, at in chunk:
                params += [lead_id, adapt(at)]
            cursor.execute(
                f"UPDATE {table} SET {column} = NULL FROM (VALUES {', '.join([row] * len(chunk))}) AS v "
                f"WHERE {table}.{pk} = v.column1 AND {table}.{column} = v.column2 RETURNING {table}.{pk}",
                params,
            )
            cleared.update(r[0] for r in cursor.fetchall())
    return [lead_id for lead_id, _ in items if lead_id not in cleared]


def clear_rescore_requests(lead_ids: Sequence[int], *, before: datetime) -> None:
    """Clear the requests a sweep served (older than `before`); newer ones get their own pass."""
    Lead.objects.filter(pk__in=lead_ids, rescore_requested_at__lt=before).update(rescore_requested_at=None)
