"""Scoring writes: queue rescoring after commit, recompute scores, and keep rule changes on record.

The pipeline for any batch of leads: rule engine (one lead query + one interaction aggregate, numpy)
→ `predict_for_leads` → `combined_priority` → ONE bulk write of rule fields, ML fields and priority
(PostgreSQL: COPY into a staging table + UPDATE … FROM that skips unchanged rows; SQLite: one
executemany) → snapshot rows only for leads whose scores changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, connections, transaction
from django.utils import timezone

from leadcrm.models import InteractionKind, Lead
from leadcrm.queueing import enqueue_now, enqueue_on_commit
from scoring import engine
from scoring.models import (
    Category,
    Detector,
    GradeBand,
    GradeDimension,
    Operator,
    RecomputeRun,
    Rule,
    RuleChange,
    ScoreSnapshot,
)
from scoring.priority import combined_priority

logger = logging.getLogger(__name__)

CHUNK_SIZE = 100_000  # leads per chunk of a full recompute: a few big chunks, not one task per lead
SWEEP_AFTER_S = 5.0  # a rescore request older than this had its task lost (broker away)
SWEEP_LIMIT = 50_000


def request_rescore(lead_id: int) -> None:
    """Note that a lead's data changed, and queue one rescore after commit."""
    from scoring.tasks import rescore_lead  # tasks imports this module

    now = timezone.now()
    leads = Lead.objects.filter(pk=lead_id)
    if leads.filter(rescore_requested_at__isnull=True).update(rescore_requested_at=now):
        # First change since the last score: one task. If Redis is down the commit still
        # stands (robust) and the sweep catches up from the database.
        enqueue_on_commit(rescore_lead, lead_id)
    else:
        leads.update(rescore_requested_at=now)  # a task is queued; tell it to look again


# ------------------------------------------------------------------------------ the pipeline


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


def _with_predictions(scores: engine.BatchScores, *, now: datetime) -> ScoreRows:
    from scoring.ml.services import predict_for_leads

    n = len(scores.ids)
    predictions = predict_for_leads(scores.ids.tolist(), now=now) if n else None
    if predictions is None:  # cold start: no promoted model, the rule score alone orders the queue
        probability = np.full(n, np.nan)
        factors = ["[]"] * n
        priority = combined_priority(scores.rule_score, None, 0.0)
    else:
        probability = np.asarray(predictions.probability, dtype=float)
        factors = predictions.factors_json
        priority = combined_priority(scores.rule_score, probability, predictions.weight)
    return ScoreRows(scores, probability, factors, np.round(priority, 4))


def score_rows(
    ids: np.ndarray,
    specs: Sequence[engine.RuleSpec],
    bands: Sequence[tuple[str, str, float]],
    *,
    now: datetime,
) -> ScoreRows:
    """Compute (no writes) everything stored for these leads."""
    return _with_predictions(engine.score_batch(ids, specs, bands, now=now), now=now)


def rescore_leads(lead_ids: Sequence[int], *, now: datetime | None = None) -> int:
    """Recompute and store the scores of these leads in one bulk write; returns how many changed."""
    now = now or timezone.now()
    ids = np.unique(np.asarray(list(lead_ids), dtype=np.int64))
    if not len(ids):
        return 0
    specs, bands = engine.load_rule_set()
    rows = score_rows(ids, specs, bands, now=now)
    if connection.vendor == "postgresql" and len(rows) <= VALUES_WRITE_MAX:
        changed = _write_values(rows, now=now, touch=True)
    else:
        with transaction.atomic():
            changed = _write(rows, now=now, touch=True)
    _report_failures(rows.scores.failures, now=now)
    return changed


def _report_failures(failures: dict[int, str], *, now: datetime, clear_others: Sequence[int] = ()) -> None:
    for rule_id, message in failures.items():
        Rule.objects.filter(pk=rule_id).update(last_error=message[:2000], last_error_at=now)
    if clear_others:
        Rule.objects.filter(pk__in=[i for i in clear_others if i not in failures]).exclude(
            last_error=""
        ).update(last_error="", last_error_at=None)


# ------------------------------------------------------------------------------ writing


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
    sets = ", ".join(
        f"{c} = s.{c}"
        for c in (
            "rule_score",
            "fit_score",
            "engagement_score",
            "grade",
            "score_breakdown",
            "ml_probability",
            "ml_factors",
            "priority",
        )
    )
    return f"""
        WITH updated AS (
            UPDATE leadcrm_lead AS l SET {sets}, scored_at = %(now)s
            FROM {source} JOIN leadcrm_lead AS old ON old.id = s.id
            WHERE l.id = s.id AND {where}
            RETURNING l.id, s.rule_score, s.fit_score, s.engagement_score, s.grade, s.ml_probability,
                      s.priority, {score_changed} AS score_changed
        ), snapshots AS (
            INSERT INTO scoring_scoresnapshot
                (lead_id, taken_at, rule_score, fit_score, engagement_score, grade, ml_probability, priority)
            SELECT id, %(now)s, rule_score, fit_score, engagement_score, grade, ml_probability, priority
            FROM updated WHERE score_changed
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM snapshots)
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
        return int(cursor.fetchone()[0])


def _apply_stage(table: str, *, now: datetime, touch: bool, since: datetime | None = None) -> int:
    sql = _apply_stage_sql(f"{table} AS s", touch=touch, only_scored_before=since is not None)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"now": now, "since": since})
        return int(cursor.fetchone()[0])


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
                "UPDATE leadcrm_lead SET rule_score = %s, fit_score = %s, engagement_score = %s, grade = %s, "
                "score_breakdown = %s, ml_probability = %s, ml_factors = %s, priority = %s, scored_at = %s "
                "WHERE id = %s",
                updates,
            )
    ScoreSnapshot.objects.bulk_create(snapshots, batch_size=1000)
    return len(snapshots)


# ------------------------------------------------------------------------------ full recompute


class _RecomputeStage:
    """Where a full recompute collects its chunks so old scores are served until it finishes."""

    def __init__(self, run_id: int) -> None:
        self.postgres = connection.vendor == "postgresql"
        self.table = f"scoring_recompute_stage_{run_id}"
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


def _prefetched(
    chunks: Sequence[np.ndarray], specs: Sequence[engine.RuleSpec], *, now: datetime, chunk_size: int
) -> Iterator[engine.BatchInputs]:
    """Each chunk's inputs. On PostgreSQL (outside a transaction) every lead comes from one streamed
    query read by a second connection in a thread, so the database computes the next chunk while this
    one is evaluated and written."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        # Inside a transaction a second connection would not see its rows: chunk by id, in line.
        for chunk in chunks:
            yield engine.fetch_batch(chunk, specs, now=now)
        return
    stream = engine.stream_batches(specs, now=now, chunk_size=chunk_size)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring-prefetch") as pool:
        try:
            pending = pool.submit(next, stream, None)
            while (inputs := pending.result()) is not None:
                pending = pool.submit(next, stream, None)
                yield inputs
        finally:
            pool.submit(stream.close).result()  # the generator's cursor lives in that thread
            pool.submit(connections.close_all).result()


def _lap(timings: dict[str, float], phase: str, since: float) -> float:
    now = time.perf_counter()
    timings[phase] += now - since
    return now


def _all_lead_ids() -> np.ndarray:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM leadcrm_lead ORDER BY id")
        return np.fromiter((r[0] for r in cursor.fetchall()), dtype=np.int64)


def recompute_all(
    *,
    run: RecomputeRun | None = None,
    reason: str = "Recompute requested",
    chunk_size: int = CHUNK_SIZE,
    now: datetime | None = None,
) -> RecomputeRun:
    """Rescore every lead in a few big chunks; new scores replace the old ones in one write at the end."""
    if run is None:
        run = RecomputeRun.objects.create(reason=reason)
    started = timezone.now()
    now = now or started
    ids = _all_lead_ids()
    RecomputeRun.objects.filter(pk=run.pk).update(
        status=RecomputeRun.Status.RUNNING, started_at=started, total_leads=len(ids), done_leads=0
    )
    specs = engine.load_specs()
    bands = engine.load_bands()
    failures: dict[int, str] = {}
    stage = _RecomputeStage(run.pk)
    chunks = [ids[start : start + chunk_size] for start in range(0, len(ids), chunk_size)]
    done = 0
    timings = dict.fromkeys(("wait_for_database", "rules", "model", "stage", "apply"), 0.0)
    try:
        clock = time.perf_counter()
        for inputs in _prefetched(chunks, specs, now=now, chunk_size=chunk_size):
            clock = _lap(timings, "wait_for_database", clock)
            scores = engine.score_inputs(inputs, specs, bands)
            clock = _lap(timings, "rules", clock)
            rows = _with_predictions(scores, now=now)
            clock = _lap(timings, "model", clock)
            failures.update(rows.scores.failures)
            if inputs.stored is not None:  # send back only the leads whose scores change
                rows = rows.subset(rows.changed_from(inputs.stored))
            stage.add(rows)
            done += len(inputs.ids)
            RecomputeRun.objects.filter(pk=run.pk).update(done_leads=done)
            clock = _lap(timings, "stage", clock)
        RecomputeRun.objects.filter(pk=run.pk).update(status=RecomputeRun.Status.APPLYING)
        with transaction.atomic():
            changed = stage.apply(now=now, since=started)
        _lap(timings, "apply", clock)
        logger.info(
            "Recompute %s: %d leads, %d changed; seconds: %s",
            run.pk,
            done,
            changed,
            ", ".join(f"{k} {v:.1f}" for k, v in timings.items()),
        )
    except Exception as exc:
        logger.exception("Full recompute %s failed", run.pk)
        RecomputeRun.objects.filter(pk=run.pk).update(
            status=RecomputeRun.Status.FAILED,
            finished_at=timezone.now(),
            errors=[{"rule_id": None, "error": f"{type(exc).__name__}: {exc}"}],
        )
        raise
    finally:
        stage.drop()
    _report_failures(failures, now=now, clear_others=[s.id for s in specs])
    names = {s.id: s.name for s in specs}
    RecomputeRun.objects.filter(pk=run.pk).update(
        status=RecomputeRun.Status.DONE,
        finished_at=timezone.now(),
        changed_leads=changed,
        errors=[{"rule_id": i, "rule": names.get(i, ""), "error": e} for i, e in failures.items()],
    )
    run.refresh_from_db()
    return run


def schedule_recompute(*, reason: str, by: AbstractBaseUser | None = None) -> RecomputeRun:
    """Queue one full recompute after commit; a run still waiting to start covers this request too."""
    from scoring.tasks import recompute_all_task

    waiting = RecomputeRun.objects.filter(status=RecomputeRun.Status.QUEUED).order_by("created_at").first()
    if waiting is not None:
        return waiting
    run = RecomputeRun.objects.create(reason=reason[:200], requested_by=by)
    enqueue_on_commit(recompute_all_task, run.pk)  # broker down: the sweep restarts queued runs
    return run


def claim_run(run_id: int, *, now: datetime | None = None) -> bool:
    """Mark a queued run as started; False when another worker has it (or it is finished)."""
    now = now or timezone.now()
    stale = now - timedelta(hours=1)  # a worker that died mid-run; acks_late redelivers its task
    claimed = RecomputeRun.objects.filter(pk=run_id, status=RecomputeRun.Status.QUEUED).update(
        status=RecomputeRun.Status.RUNNING, started_at=now
    )
    if not claimed:
        claimed = RecomputeRun.objects.filter(
            pk=run_id,
            status__in=[RecomputeRun.Status.RUNNING, RecomputeRun.Status.APPLYING],
            started_at__lt=stale,
        ).update(started_at=now)
    return bool(claimed)


def sweep_stale_scores(*, now: datetime | None = None, older_than_s: float = SWEEP_AFTER_S) -> int:
    """Rescore leads whose rescore request is older than a few seconds (its task was lost); returns how many."""
    from scoring.tasks import recompute_all_task, rescore_lead

    now = now or timezone.now()
    cutoff = now - timedelta(seconds=older_than_s)
    ids = list(
        Lead.objects.filter(rescore_requested_at__lt=cutoff)
        .order_by("rescore_requested_at")
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        rescore_leads(chunk, now=now)
        # Clear only requests we have seen; a newer one (after the cutoff) gets its own pass below.
        Lead.objects.filter(pk__in=chunk, rescore_requested_at__lt=cutoff).update(rescore_requested_at=None)
    for lead_id in Lead.objects.filter(pk__in=ids, rescore_requested_at__isnull=False).values_list(
        "pk", flat=True
    ):
        enqueue_now(rescore_lead, lead_id)
    # A full recompute whose task never reached a worker.
    for run_id in RecomputeRun.objects.filter(
        status=RecomputeRun.Status.QUEUED, created_at__lt=now - timedelta(seconds=30)
    ).values_list("pk", flat=True):
        enqueue_now(recompute_all_task, run_id)
    return len(ids)


def refresh_decay(*, now: datetime | None = None) -> RecomputeRun:
    """Keep decayed and windowed engagement points current as days pass (a nightly full recompute)."""
    run = RecomputeRun.objects.create(reason="Nightly refresh of time decay and windows")
    return recompute_all(run=run, now=now)


# ------------------------------------------------------------------------------ rules


def save_rule(*, rule: Rule, by: AbstractBaseUser | None = None) -> Rule:
    """Validate and store a rule, keep the change on record, and queue a full recompute."""
    rule.full_clean()
    before = None
    if rule.pk:
        old = Rule.objects.filter(pk=rule.pk).first()
        before = old.as_json() if old else None
    with transaction.atomic():
        rule.save()
        after = rule.as_json()
        if before == after:
            return rule
        RuleChange.objects.create(
            rule=rule,
            rule_name=rule.name,
            action=RuleChange.Action.UPDATED if before else RuleChange.Action.CREATED,
            changed_by=by,
            before=before,
            after=after,
        )
        schedule_recompute(reason=f"Rule “{rule.name}” {'changed' if before else 'created'}", by=by)
    return rule


def delete_rule(*, rule: Rule, by: AbstractBaseUser | None = None) -> None:
    """Delete a rule, keep what it was on record, and queue a full recompute."""
    with transaction.atomic():
        RuleChange.objects.create(
            rule=None,
            rule_name=rule.name,
            action=RuleChange.Action.DELETED,
            changed_by=by,
            before=rule.as_json(),
            after=None,
        )
        rule.delete()
        schedule_recompute(reason=f"Rule “{rule.name}” deleted", by=by)


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
