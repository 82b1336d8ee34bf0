"""The scoring API: queue rescoring after commit, rescore a batch, recompute everyone, change rules.

The pipeline for any batch of leads: rule engine (one lead query + one interaction aggregate, numpy)
→ `predict_for_leads` (the promoted model, if any) → `combined_priority` → ONE bulk write through
`scoring.store`, the only writer of score fields. Tasks are sent by name through `config.on_commit`,
so this module never imports `scoring.tasks` (which imports it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import numpy as np
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.utils import timezone

from config.on_commit import enqueue_now, enqueue_on_commit
from leadcrm.models import Lead
from scoring import engine, runs, store
from scoring.ml.services import predict_for_leads
from scoring.models import RecomputeRun, Rule, RuleChange
from scoring.priority import combined_priority
from scoring.runs import RECOMPUTE_TASK, claim_run, schedule_recompute

__all__ = [
    "claim_run",
    "delete_rule",
    "recompute_all",
    "refresh_decay",
    "request_rescore",
    "rescore_leads",
    "save_rule",
    "schedule_recompute",
    "score_rows",
    "sweep_stale_scores",
]

logger = logging.getLogger(__name__)

RESCORE_LEAD_TASK = "scoring.tasks.rescore_lead"
RESCORE_LEADS_TASK = "scoring.tasks.rescore_leads_task"
RESCORE_CHUNK = 1000  # leads per set-based rescore task
CHUNK_SIZE = 100_000  # leads per chunk of a full recompute: a few big chunks, not one task per lead
SWEEP_AFTER_S = 5.0  # a rescore request older than this had its task lost (broker away)
SWEEP_LIMIT = 50_000


def request_rescore(lead_id: int | Iterable[int]) -> None:
    """Note that a lead's data changed, and queue one rescore after commit.

    Given many ids (a batch of events, an import), it marks them all in two statements and
    queues a task only for the leads that had no rescore pending."""
    if not isinstance(lead_id, int):
        fresh = store.mark_rescores_requested(list(lead_id), now=timezone.now())
        # One set-based task per RESCORE_CHUNK leads, not one task per lead.
        for start in range(0, len(fresh), RESCORE_CHUNK):
            enqueue_on_commit(RESCORE_LEADS_TASK, fresh[start : start + RESCORE_CHUNK])
        return
    if store.mark_rescore_requested(lead_id, now=timezone.now()):
        # First change since the last score: one task. If Redis is down the commit still
        # stands (robust) and the sweep catches up from the database.
        enqueue_on_commit(RESCORE_LEAD_TASK, lead_id)


def _with_predictions(scores: engine.BatchScores, *, now: datetime) -> store.ScoreRows:
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
    return store.ScoreRows(scores, probability, factors, np.round(priority, 4))


def score_rows(
    ids: np.ndarray,
    specs: Sequence[engine.RuleSpec],
    bands: Sequence[tuple[str, str, float]],
    *,
    now: datetime,
) -> store.ScoreRows:
    """Compute (no writes) everything stored for these leads."""
    return _with_predictions(engine.score_batch(ids, specs, bands, now=now), now=now)


def rescore_requested(lead_ids: Sequence[int]) -> list[int]:
    """Rescore those of these leads that still have a rescore request, in one bulk pass, and clear
    each request that did not move meanwhile. Returns the leads whose request moved (a change
    arrived while we computed): they need another pass."""
    requested: dict[int, datetime] = {
        pk: at
        for pk, at in Lead.objects.filter(
            pk__in=list(lead_ids), rescore_requested_at__isnull=False
        ).values_list("pk", "rescore_requested_at")
        if at is not None
    }
    if not requested:
        return []
    rescore_leads(sorted(requested))
    return store.clear_unchanged_rescore_requests(requested)


def rescore_leads(lead_ids: Sequence[int], *, now: datetime | None = None) -> int:
    """Recompute and store the scores of these leads in one bulk write; returns how many changed."""
    now = now or timezone.now()
    ids = np.unique(np.asarray(list(lead_ids), dtype=np.int64))
    if not len(ids):
        return 0
    specs, bands = engine.load_rule_set()
    rows = score_rows(ids, specs, bands, now=now)
    changed = store.write_scores(rows, now=now)
    _report_failures(rows.scores.failures, now=now)
    return changed


def _report_failures(failures: dict[int, str], *, now: datetime, clear_others: Sequence[int] = ()) -> None:
    for rule_id, message in failures.items():
        Rule.objects.filter(pk=rule_id).update(last_error=message[:2000], last_error_at=now)
    if clear_others:
        Rule.objects.filter(pk__in=[i for i in clear_others if i not in failures]).exclude(
            last_error=""
        ).update(last_error="", last_error_at=None)


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
        cursor.execute(f"SELECT id FROM {store.LEAD_TABLE} ORDER BY id")
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
        status=RecomputeRun.Status.RUNNING,
        started_at=started,
        total_leads=len(ids),
        done_leads=0,
        lease_expires_at=started + runs.lease(),
    )
    specs = engine.load_specs()
    bands = engine.load_bands()
    failures: dict[int, str] = {}
    stage = store.RecomputeStage(run.pk)
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
            runs.renew_lease(run.pk, done_leads=done)
            clock = _lap(timings, "stage", clock)
        runs.renew_lease(run.pk)
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
        runs.fail_run(run.pk, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        stage.drop()
    _report_failures(failures, now=now, clear_others=[s.id for s in specs])
    names = {s.id: s.name for s in specs}
    RecomputeRun.objects.filter(pk=run.pk).update(
        status=RecomputeRun.Status.DONE,
        finished_at=timezone.now(),
        lease_expires_at=None,
        changed_leads=changed,
        errors=[{"rule_id": i, "rule": names.get(i, ""), "error": e} for i, e in failures.items()],
    )
    run.refresh_from_db()
    return run


def sweep_stale_scores(*, now: datetime | None = None, older_than_s: float = SWEEP_AFTER_S) -> int:
    """Rescore leads whose rescore request is older than a few seconds (its task was lost); returns how many."""
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
        store.clear_rescore_requests(chunk, before=cutoff)
    for lead_id in Lead.objects.filter(pk__in=ids, rescore_requested_at__isnull=False).values_list(
        "pk", flat=True
    ):
        enqueue_now(RESCORE_LEAD_TASK, lead_id)
    # Full recomputes whose task never reached a worker, or whose worker stopped (its lease ran out).
    for run_id in runs.abandoned_runs(now=now):
        enqueue_now(RECOMPUTE_TASK, run_id)
    store.drop_orphan_stages(keep=runs.active_run_ids())
    return len(ids)


def refresh_decay(*, now: datetime | None = None) -> RecomputeRun:
    """Keep decayed and windowed engagement points current as days pass (a nightly full recompute)."""
    run = RecomputeRun.objects.create(reason="Nightly refresh of time decay and windows")
    return recompute_all(run=run, now=now)


def save_rule(*, rule: Rule, by: User | None = None) -> Rule:
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


def delete_rule(*, rule: Rule, by: User | None = None) -> None:
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
