"""Predictive scoring services: predict for a batch, train and promote, roll back, queue a retrain.

`predict_for_leads` is what the rule-scoring pipeline calls in the same task as the rule score.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import joblib
import numpy as np
import pandas as pd
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from config.on_commit import enqueue_now, enqueue_on_commit
from scoring.ml import pipeline
from scoring.ml.features import (
    build_batch,
    custom_keys_in_use,
    feature_labels,
    is_protected,
    labels_of,
    leads_by_id,
    predict_batch,
    training_leads,
)
from scoring.ml.models import (
    MlSettings,
    ModelVersion,
    ProtectedAttribute,
    RunState,
    TrainingRun,
    VersionStatus,
)
from scoring.runs import schedule_recompute

logger = logging.getLogger(__name__)

RETRAIN_TASK = "scoring.ml.tasks.retrain_model"
HOLDOUT_SHARE = 0.2


@dataclass(frozen=True)
class Predictions:
    probability: np.ndarray  # one per lead, in the order asked; NaN where not scored
    factors_json: list[str]  # per lead, the reasons as stored: [{"feature","label","effect"}, …]
    weight: float  # the manager's blend weight for combined priority
    model_version_id: int

    @property
    def factors(self) -> list[list[dict]]:
        return [json.loads(text) for text in self.factors_json]


# --- Prediction -------------------------------------------------------------------------------

_cache_lock = threading.Lock()
_cache: dict[str, object] = {"key": None, "scorer": None}
_reported: set[int] = set()  # versions this process already logged as unavailable


class ModelUnavailable(Exception):
    """The promoted model cannot be used; `reason` is what the lead, /ml/ and the admin show."""

    def __init__(self, version_id: int, reason: str) -> None:
        super().__init__(reason)
        self.version_id = version_id
        self.reason = reason


def unavailable_reason(version_id: int, failure: str) -> str:
    return f"Predictive score unavailable: model v{version_id} {failure}"


def mark_unavailable(version_id: int, failure: str) -> ModelUnavailable:
    """Record that a version cannot be used (once), log it once per process, and return the error.

    The version stays promoted, so nothing else is silently put in its place: a manager retrains or
    rolls back, and until then leads are ranked by their rule score alone.
    """
    ModelVersion.objects.filter(pk=version_id).exclude(status=VersionStatus.FAILED).update(
        status=VersionStatus.FAILED, failure=failure[:2000], failed_at=timezone.now()
    )
    if version_id not in _reported:
        _reported.add(version_id)
        logger.error(
            "Predictive model v%s %s; leads are ranked by rule score alone until it is retrained or rolled back",
            version_id,
            failure,
        )
    return ModelUnavailable(version_id, unavailable_reason(version_id, failure))


def load_promoted() -> tuple[int, pipeline.Scorer] | None:
    """The promoted model, unpickled once per process and reloaded when another version is promoted.

    None while no model is promoted (cold start); ModelUnavailable when the promoted one cannot be
    loaded (a corrupt or empty artifact, a scikit-learn it was not pickled for), or failed before.
    """
    row = (
        ModelVersion.objects.filter(is_promoted=True)
        .values_list("id", "created_at", "status", "failure")
        .first()
    )
    if row is None:
        return None
    version_id, created_at, status, failure = row
    if status == VersionStatus.FAILED:
        raise ModelUnavailable(version_id, unavailable_reason(version_id, failure or "failed"))
    key = (version_id, created_at)
    with _cache_lock:
        if _cache["key"] != key:
            blob = ModelVersion.objects.filter(pk=version_id).values_list("artifact", flat=True).first()
            try:
                scorer = joblib.load(io.BytesIO(bytes(blob or b"")))
                if not isinstance(scorer, pipeline.Scorer):
                    raise TypeError(f"the artifact holds a {type(scorer).__name__}, not a scorer")
            except Exception as exc:
                raise mark_unavailable(
                    version_id, f"could not be loaded ({type(exc).__name__}: {exc})"
                ) from exc
            _cache["scorer"], _cache["key"] = scorer, key
        return version_id, _cache["scorer"]  # type: ignore[return-value]


def predict_for_leads(lead_ids: Sequence[int], *, now: datetime) -> Predictions | None:
    """Probabilities and reasons from the promoted model; None while no model is promoted (cold start).

    A model that cannot be loaded or fails to predict gives every lead no probability and the
    reason instead (see `mark_unavailable`): rule scoring never depends on the model. Database
    errors are not the model's fault and propagate (the task retries).

    Set-based for the whole batch: two plain scans for the features (PostgreSQL), one encode, one
    predict pinned to one thread. Nothing is written here: the caller's score write stores the probability on the
    lead and, when it changed, in the lead's score history (ScoreSnapshot, with its time), which
    is what live accuracy is judged on once outcomes arrive.
    """
    ids = np.asarray(list(lead_ids), dtype=np.int64)
    try:
        loaded = load_promoted()
    except ModelUnavailable as exc:
        return _unavailable(len(ids), exc)
    if loaded is None:
        return None
    version_id, scorer = loaded
    weight = float(MlSettings.load().blend_weight)
    probability = np.full(len(ids), np.nan)
    factors = ["[]"] * len(ids)
    if len(ids):
        try:
            names = scorer.schema.names
            if connection.vendor == "postgresql":
                batch = predict_batch(ids.tolist(), now=now, names=names)
            else:
                custom_keys = [name.removeprefix("custom.") for name in names if name.startswith("custom.")]
                batch = build_batch(leads_by_id(ids.tolist()), now=now, custom_keys=custom_keys)
            if len(batch.lead_ids):  # none, when every lead asked about was deleted meanwhile
                X = scorer.schema.encode(batch.frame)
                p, effects = scorer.explain(X)
                position = pd.Index(ids).get_indexer(batch.lead_ids)
                probability[position] = p
                texts = np.array(factors, dtype=object)
                texts[position] = scorer.factors_json(X, effects)
                factors = texts.tolist()
        except DatabaseError:
            raise
        except Exception as exc:
            error = mark_unavailable(version_id, f"failed to predict ({type(exc).__name__}: {exc})")
            return _unavailable(len(ids), error)
    return Predictions(
        probability=probability, factors_json=factors, weight=weight, model_version_id=version_id
    )


def _unavailable(n: int, error: ModelUnavailable) -> Predictions:
    """No probability for anyone, the reason on every lead, and the rule score alone for priority."""
    reason = json.dumps([{"unavailable": error.reason}])
    return Predictions(
        probability=np.full(n, np.nan),
        factors_json=[reason] * n,
        weight=0.0,
        model_version_id=error.version_id,
    )


# --- Training ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingOutcome:
    state: str  # RunState value
    message: str
    version: ModelVersion | None = None


def protected_attributes() -> list[str]:
    return list(ProtectedAttribute.objects.values_list("name", flat=True))


def outcome_counts(*, now: datetime | None = None) -> tuple[int, int]:
    """(won, lost-or-disqualified) leads the model could learn from."""
    leads = training_leads(until=now)
    won = leads.filter(status="won").count()
    return won, leads.count() - won


def cold_start_message(won: int, lost: int, needed: int) -> str:
    return (
        f"Not enough outcomes to learn from yet: {won} won and {lost} lost or disqualified leads; "
        f"the model needs at least {needed} of each. Leads are ranked by the rule score alone until then."
    )


def training_data(*, now: datetime | None = None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, dict]:
    """(features, labels, closing day, dropped protected columns) of every lead with an outcome."""
    protected = protected_attributes()
    leads = training_leads(until=now)
    in_use = custom_keys_in_use(leads)
    keys = [k for k in in_use if not is_protected(k, protected)]
    batch = build_batch(leads, now=None, custom_keys=keys)
    frame = batch.frame
    dropped = {c: "protected attribute" for c in frame.columns if is_protected(c, protected)}
    frame = frame.drop(columns=list(dropped))
    dropped.update({f"custom.{k}": "protected attribute" for k in in_use if k not in keys})
    if batch.status is None:
        raise ValueError("training batches carry each lead's outcome")
    return frame, labels_of(batch.status), batch.cutoff, dropped


def train_and_promote(
    *,
    now: datetime | None = None,
    run: TrainingRun | None = None,
    progress: Callable[[float, str], None] | None = None,
    rescore: bool = True,
) -> TrainingOutcome:
    """Train on every outcome so far, gate on the newest outcomes, promote if not worse. Synchronous.

    Cold start (fewer than the configured won or lost leads) trains nothing and says why. The held-out
    set is the newest 20% of outcomes (a time split), so the gate and its figure are not flattered
    by conversion rates drifting over time; the promoted artifact is then refit on all outcomes.
    """
    now = now or timezone.now()
    report = progress or (lambda _share, _msg: None)
    settings = MlSettings.load()
    won, lost = outcome_counts(now=now)
    needed = settings.min_outcomes_per_class
    if won < needed or lost < needed:
        return TrainingOutcome(RunState.COLD_START, cold_start_message(won, lost, needed))

    report(0.02, "Building features from the CRM")
    frame, y, cutoff, protected_dropped = training_data(now=now)
    labels, formats, numeric = feature_labels()
    labels.update(
        {
            c: c.removeprefix("custom.").replace("_", " ").capitalize()
            for c in frame
            if c.startswith("custom.")
        }
    )
    train, holdout = time_split(cutoff, y)
    report(0.1, "Selecting the model")
    folds = 5 if len(train) <= 20_000 else 3
    scorer = pipeline.select_and_fit(
        frame.iloc[train].reset_index(drop=True),
        y[train],
        folds=folds,
        labels=labels,
        formats=formats,
        numeric=numeric & set(frame.columns),
        progress=lambda share, msg: report(0.1 + 0.65 * share, msg),
    )
    scorer.metrics["dropped_columns"].update(protected_dropped)
    X_hold = scorer.schema.encode(frame.iloc[holdout])
    new_figures = pipeline.evaluate(y[holdout], scorer.predict_proba(X_hold))
    promote, decision, current_figures = promotion_gate(
        scorer, new_figures, frame, y, cutoff, holdout, tolerance=settings.promotion_tolerance
    )
    scorer.metrics.update(
        {
            "time_split": {**new_figures, "rows": int(len(holdout)), "train_rows": int(len(train))},
            "current_on_holdout": current_figures,
            "cv_on": "older 80% of outcomes",
            "trained_until": float(np.nanmax(cutoff)) if promote else float(np.nanmax(cutoff[train])),
        }
    )
    if promote:
        report(0.8, "Refitting the chosen model on all outcomes")
        final = pipeline.refit(scorer, frame, y)
    else:
        final = scorer
    # The promoted artifact is refit on every outcome; a rejected one stays as evaluated.
    fitted_on = y if promote else y[train]
    version = save_version(
        final, won=int(fitted_on.sum()), lost=int(len(fitted_on) - fitted_on.sum()), decision=decision
    )
    if promote:
        promote_version(version, now=now, rescore=rescore)
    report(1.0, decision)
    return TrainingOutcome(RunState.DONE, decision, version)


def time_split(order: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (older, newest HOLDOUT_SHARE) outcomes; a stratified random split if the newest lack a class."""
    ranked = np.argsort(order, kind="stable")
    cut = int(round(len(y) * (1 - HOLDOUT_SHARE)))
    train, holdout = ranked[:cut], ranked[cut:]
    if min(y[holdout].sum(), len(holdout) - y[holdout].sum()) < 5:
        from sklearn.model_selection import train_test_split

        train, holdout = train_test_split(
            np.arange(len(y)), test_size=HOLDOUT_SHARE, stratify=y, random_state=0
        )
    return np.sort(train), np.sort(holdout)


def promotion_gate(
    candidate: pipeline.Scorer,
    new: dict,
    frame: pd.DataFrame,
    y: np.ndarray,
    cutoff: np.ndarray,
    holdout: np.ndarray,
    *,
    tolerance: float,
) -> tuple[bool, str, dict | None]:
    """Promote unless the candidate is worse than the model in use on held-out outcomes.

    Fair ground for both: the newest outcomes the current model never trained on. When too few such
    outcomes exist, the candidate's held-out ROC-AUC is compared with the one the current model
    recorded on its own held-out outcomes when it was trained.
    """
    try:
        current = load_promoted()
    except ModelUnavailable as exc:
        return (
            True,
            f"Promoted: the model in use is unavailable ({exc.reason}); held-out ROC-AUC {new['roc_auc']:.3f}.",
            None,
        )
    if current is None:
        return True, f"Promoted: first model (held-out ROC-AUC {new['roc_auc']:.3f}).", None
    current_id, current_scorer = current
    trained_until = current_scorer.metrics.get("trained_until", np.inf)
    unseen = holdout[cutoff[holdout] > trained_until]
    y_unseen = y[unseen]
    if len(unseen) >= 20 and min(y_unseen.sum(), len(y_unseen) - y_unseen.sum()) >= 5:
        X = current_scorer.schema.encode(frame.iloc[unseen])
        theirs = pipeline.evaluate(y_unseen, current_scorer.predict_proba(X))
        ours = pipeline.evaluate(
            y_unseen, candidate.predict_proba(candidate.schema.encode(frame.iloc[unseen]))
        )
        where = f"the {len(unseen)} newest outcomes neither model trained on"
    else:
        theirs = current_scorer.metrics.get("time_split") or {
            "roc_auc": current_scorer.metrics.get("roc_auc", 0.0)
        }
        ours = new
        where = "each model's own held-out newest outcomes (too few outcomes are new since the current model)"
    promote = ours["roc_auc"] >= theirs["roc_auc"] - tolerance
    verb = "Promoted" if promote else "Not promoted"
    decision = (
        f"{verb}: held-out ROC-AUC {ours['roc_auc']:.3f} against {theirs['roc_auc']:.3f} "
        f"for the current model #{current_id}, on {where}."
    )
    return promote, decision, theirs


def save_version(scorer: pipeline.Scorer, *, won: int, lost: int, decision: str) -> ModelVersion:
    """Store a fitted scorer with its figures as a new (not yet promoted) version."""
    blob = io.BytesIO()
    joblib.dump(scorer, blob, compress=3)
    promoted = decision.startswith("Promoted")
    return ModelVersion.objects.create(
        algorithm=scorer.kind,
        features=scorer.schema.names,
        training_rows=won + lost,
        won=won,
        lost=lost,
        metrics=scorer.metrics,
        artifact=blob.getvalue(),
        status=VersionStatus.CANDIDATE if promoted else VersionStatus.REJECTED,
        decision=decision,
    )


@transaction.atomic
def promote_version(version: ModelVersion, *, now: datetime | None = None, rescore: bool = True) -> None:
    """Make this version the one in use (also how the admin rolls back to an older one)."""
    now = now or timezone.now()
    ModelVersion.objects.filter(is_promoted=True).exclude(pk=version.pk).update(
        is_promoted=False, status=VersionStatus.RETIRED
    )
    ModelVersion.objects.filter(pk=version.pk).update(
        is_promoted=True, status=VersionStatus.PROMOTED, promoted_at=now
    )
    version.refresh_from_db()
    if rescore:
        transaction.on_commit(_rescore_everyone, robust=True)  # robust: the broker may be down


def _rescore_everyone() -> None:
    schedule_recompute(reason="A new predictive model was promoted")  # new probabilities for every lead


def rollback(*, to: ModelVersion | None = None) -> ModelVersion | None:
    """Promote `to`, or else the version promoted before the current one; returns what is now in use."""
    if to is None:
        current = ModelVersion.objects.filter(is_promoted=True).first()
        previous = ModelVersion.objects.filter(promoted_at__isnull=False).exclude(is_promoted=True)
        if current is not None:
            previous = previous.filter(created_at__lt=current.created_at)
        to = previous.order_by("-promoted_at").first()
    if to is None:
        return None
    promote_version(to)
    return to


# --- Retrain runs -----------------------------------------------------------------------------


def request_retrain() -> TrainingRun:
    """Queue a retrain after commit, unless one is already queued or running (then return that one)."""
    active = TrainingRun.objects.filter(state__in=[RunState.QUEUED, RunState.RUNNING]).first()
    if active is not None:
        return active
    run = TrainingRun.objects.create()
    enqueue_on_commit(RETRAIN_TASK, run.pk)  # broker down: the run stays queued
    return run


QUEUED_RESEND_AFTER = timedelta(seconds=60)
RUNNING_LOST_AFTER = timedelta(hours=2)


def sweep_training_runs(*, now: datetime | None = None) -> tuple[int, int]:
    """Re-send runs whose task never reached a worker (broker away); fail runs whose worker died.

    Returns (re-sent, failed). Run by Celery beat every minute; the database is the source of truth.
    """
    now = now or timezone.now()
    lost = TrainingRun.objects.filter(state=RunState.RUNNING, started_at__lt=now - RUNNING_LOST_AFTER).update(
        state=RunState.FAILED,
        finished_at=now,
        message="Failed: the worker stopped before finishing; retrain again.",
    )
    resent = 0
    for run_id in TrainingRun.objects.filter(
        state=RunState.QUEUED, requested_at__lt=now - QUEUED_RESEND_AFTER
    ).values_list("pk", flat=True):
        if not enqueue_now(RETRAIN_TASK, run_id):
            break  # broker still away: the next sweep tries again
        resent += 1
    return resent, lost


def run_training(run_id: int) -> TrainingRun | None:
    """Carry out one queued run, recording progress and its outcome on the run row."""
    claimed = TrainingRun.objects.filter(pk=run_id, state=RunState.QUEUED).update(
        state=RunState.RUNNING, started_at=timezone.now(), message="Starting"
    )
    if not claimed:
        return None  # already taken by another worker, or finished

    def progress(share: float, message: str) -> None:
        TrainingRun.objects.filter(pk=run_id).update(
            progress=round(min(max(share, 0), 1), 3), message=message[:300]
        )

    try:
        outcome = train_and_promote(progress=progress)
    except Exception as exc:
        logger.exception("Training run %s failed", run_id)
        TrainingRun.objects.filter(pk=run_id).update(
            state=RunState.FAILED, finished_at=timezone.now(), message=f"Failed: {exc}"[:300]
        )
        return TrainingRun.objects.get(pk=run_id)
    TrainingRun.objects.filter(pk=run_id).update(
        state=outcome.state,
        finished_at=timezone.now(),
        progress=1.0,
        message=outcome.message[:300],
        version=outcome.version,
    )
    return TrainingRun.objects.get(pk=run_id)


def set_blend_weight(weight: float) -> MlSettings:
    """Change the share of the probability in the queue priority (0–1)."""
    if not 0 <= weight <= 1:
        raise ValueError("The blend weight must be between 0 and 1.")
    settings = MlSettings.load()
    settings.blend_weight = weight
    settings.save(update_fields=["blend_weight"])
    return settings
