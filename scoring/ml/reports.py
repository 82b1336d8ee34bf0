"""Reads for the manager's accuracy page: live accuracy of past predictions, calibration, fairness.

Honest by construction: a closed lead counts only through the last prediction made *before* it
closed, so nothing the model saw after the outcome can flatter it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from django.db.models import F, OuterRef, Subquery
from django.db.models.fields.json import KT
from sklearn.metrics import average_precision_score, roc_auc_score

from leadcrm.models import CLOSED_STATUSES, Lead, LeadStatus
from scoring.ml.features import OUTCOME_STATUSES
from scoring.ml.models import MlSettings, ModelVersion, ProtectedAttribute, TrainingRun
from scoring.ml.services import cold_start_message, outcome_counts
from scoring.models import ScoreSnapshot

MIN_FOR_AUC = 10  # outcomes of each class before live ROC-AUC is shown
CHART_W, CHART_H, PAD = 320, 320, 36


@dataclass
class AccuracyReport:
    promoted: ModelVersion | None
    cold_start: str = ""
    outcomes: int = 0
    won: int = 0
    roc_auc: float | None = None
    pr_auc: float | None = None
    rule_roc_auc: float | None = None
    base_rate: float | None = None
    calibration: list[dict] = field(default_factory=list)
    calibration_svg: dict = field(default_factory=dict)
    deciles: list[dict] = field(default_factory=list)
    grades: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    last_run: TrainingRun | None = None
    versions: list[ModelVersion] = field(default_factory=list)
    weight: float = 0.5


def accuracy_report() -> AccuracyReport:
    """Live accuracy of the predictions made before each outcome, plus drift warnings."""
    settings = MlSettings.load()
    promoted = ModelVersion.objects.filter(is_promoted=True).defer("artifact").first()
    report = AccuracyReport(
        promoted=promoted,
        last_run=TrainingRun.objects.select_related("version").first(),
        versions=list(ModelVersion.objects.defer("artifact")[:10]),
        weight=settings.blend_weight,
    )
    won, lost = outcome_counts()
    if promoted is None and (won < settings.min_outcomes_per_class or lost < settings.min_outcomes_per_class):
        report.cold_start = cold_start_message(won, lost, settings.min_outcomes_per_class)

    # The lead's score history holds each prediction from the moment it changed: the last one
    # taken before closing is what the model said before anyone knew the outcome.
    before_close = ScoreSnapshot.objects.filter(
        lead=OuterRef("pk"), taken_at__lt=OuterRef("closed_at"), ml_probability__isnull=False
    ).order_by("-taken_at")
    rows = list(
        Lead.objects.filter(status__in=OUTCOME_STATUSES, closed_at__isnull=False)
        .annotate(
            p=Subquery(before_close.values("ml_probability")[:1]),
            g=Subquery(before_close.values("grade")[:1]),
            r=Subquery(before_close.values("rule_score")[:1]),
        )
        .filter(p__isnull=False)
        .values_list("status", "p", "g", "r")
    )
    if not rows:
        return report
    y = np.array([s == LeadStatus.WON for s, *_ in rows], dtype=float)
    p = np.array([r[1] for r in rows], dtype=float)
    grade = np.array([r[2] or "—" for r in rows], dtype=object)
    rule = np.array([r[3] or 0.0 for r in rows], dtype=float)
    report.outcomes, report.won = len(y), int(y.sum())
    report.base_rate = float(y.mean())
    if min(y.sum(), len(y) - y.sum()) >= MIN_FOR_AUC:
        report.roc_auc = round(float(roc_auc_score(y, p)), 3)
        report.pr_auc = round(float(average_precision_score(y, p)), 3)
        if np.unique(rule).size > 1:
            report.rule_roc_auc = round(float(roc_auc_score(y, rule)), 3)
    report.calibration = calibration_bins(y, p)
    report.calibration_svg = calibration_chart(report.calibration)
    report.deciles = conversion_by_decile(y, p)
    report.grades = conversion_by_group(y, grade)
    if promoted is not None and report.roc_auc is not None:
        expected = (promoted.metrics.get("time_split") or {}).get("roc_auc") or promoted.metrics.get(
            "roc_auc"
        )
        if expected is not None and report.roc_auc < expected - settings.drift_tolerance:
            report.warnings.append(
                f"Live ROC-AUC {report.roc_auc:.3f} is below the training estimate {expected:.3f}: "
                "the leads may have changed since training. Retrain, or check recent data imports."
            )
    if promoted is not None:
        shift = score_shift(promoted)
        if shift is not None and shift > 0.25:
            report.warnings.append(
                f"Today's scores are distributed differently from the training scores (PSI {shift:.2f} > 0.25): "
                "the kind of leads coming in has changed. Watch the live accuracy and consider a retrain."
            )
    return report


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    """Predicted against observed conversion in equal-width probability bins."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            out.append(
                {
                    "range": f"{edges[b]:.0%}–{edges[b + 1]:.0%}",
                    "n": int(sel.sum()),
                    "predicted": round(float(p[sel].mean()), 3),
                    "observed": round(float(y[sel].mean()), 3),
                }
            )
    return out


def calibration_chart(bins: list[dict]) -> dict:
    """Coordinates for the server-side SVG: the diagonal and one dot per bin (area ~ leads)."""
    inner_w, inner_h = CHART_W - 2 * PAD, CHART_H - 2 * PAD
    biggest = max((b["n"] for b in bins), default=1)
    points = []
    for b in bins:
        points.append(
            {
                "x": round(PAD + b["predicted"] * inner_w, 1),
                "y": round(CHART_H - PAD - b["observed"] * inner_h, 1),
                "r": round(3 + 7 * math.sqrt(b["n"] / biggest), 1),
                **b,
            }
        )
    line = " ".join(f"{p['x']},{p['y']}" for p in points)
    ticks = [
        {"v": f"{t:.0%}", "x": PAD + t * inner_w, "y": CHART_H - PAD - t * inner_h}
        for t in (0, 0.25, 0.5, 0.75, 1)
    ]
    return {
        "w": CHART_W,
        "h": CHART_H,
        "pad": PAD,
        "iw": inner_w,
        "ih": inner_h,
        "mid": CHART_W / 2,
        "x0": PAD,
        "y0": CHART_H - PAD,
        "x1": CHART_W - PAD,
        "y1": PAD,
        "points": points,
        "line": line,
        "ticks": ticks,
    }


def conversion_by_decile(y: np.ndarray, p: np.ndarray) -> list[dict]:
    """Decile 1 = the top-scored tenth; conversion should fall from top to bottom."""
    order = np.argsort(-p, kind="stable")
    out = []
    for d, part in enumerate(np.array_split(order, 10), start=1):
        if len(part):
            out.append(
                {
                    "decile": d,
                    "n": len(part),
                    "mean_probability": round(float(p[part].mean()), 3),
                    "conversion": round(float(y[part].mean()), 3),
                }
            )
    return out


def conversion_by_group(y: np.ndarray, group: np.ndarray) -> list[dict]:
    out = []
    for value in sorted(set(group.tolist())):
        sel = group == value
        out.append({"group": value, "n": int(sel.sum()), "conversion": round(float(y[sel].mean()), 3)})
    return out


def score_shift(version: ModelVersion) -> float | None:
    """Population stability index of open leads' current probabilities against the training deciles."""
    edges = version.metrics.get("score_deciles")
    if not edges or len(edges) < 3:
        return None
    current = np.array(
        list(
            Lead.objects.exclude(status__in=CLOSED_STATUSES)
            .filter(ml_probability__isnull=False)
            .values_list("ml_probability", flat=True)[:200_000]
        ),
        dtype=float,
    )
    if len(current) < 100:
        return None
    inner = np.unique(np.asarray(edges[1:-1], dtype=float))
    expected = np.full(len(inner) + 1, 1.0 / (len(inner) + 1))
    actual = np.bincount(np.searchsorted(inner, current, side="right"), minlength=len(inner) + 1) / len(
        current
    )
    actual = np.clip(actual, 1e-4, None)
    return round(float(np.sum((actual - expected) * np.log(actual / expected))), 3)


# --- Fairness ---------------------------------------------------------------------------------

LEAD_ATTRIBUTES = ("country", "preferred_language", "industry", "source")


def fairness_attributes() -> list[str]:
    """Attributes a manager can audit: the protected list (custom attributes) and a few lead fields."""
    return [*ProtectedAttribute.objects.values_list("name", flat=True), *LEAD_ATTRIBUTES]


def fairness_report(attribute: str, *, min_group: int = 10) -> dict:
    """Per group of `attribute`: leads, mean probability, share in the overall top decile; disparity ratio."""
    leads = Lead.objects.exclude(status__in=CLOSED_STATUSES).filter(ml_probability__isnull=False)
    field_names = {f.name for f in Lead._meta.concrete_fields}
    value = (
        F(attribute)
        if attribute in LEAD_ATTRIBUTES and attribute in field_names
        else KT(f"custom__{attribute}")
    )
    rows = list(leads.annotate(v=value).values_list("v", "ml_probability")[:500_000])
    if not rows:
        return {"attribute": attribute, "groups": [], "disparity": None, "n": 0}
    group = np.array([str(v) if v not in (None, "") else "(not given)" for v, _ in rows], dtype=object)
    p = np.array([r[1] for r in rows], dtype=float)
    threshold = np.quantile(p, 0.9)
    top = p >= threshold
    groups = []
    for g in sorted(set(group.tolist())):
        sel = group == g
        groups.append(
            {
                "group": g,
                "n": int(sel.sum()),
                "mean_probability": round(float(p[sel].mean()), 3),
                "median_probability": round(float(np.median(p[sel])), 3),
                "top_decile_rate": round(float(top[sel].mean()), 3),
            }
        )
    counted = [g for g in groups if g["n"] >= min_group and g["group"] != "(not given)"]
    rates = [g["top_decile_rate"] for g in counted]
    disparity = round(min(rates) / max(rates), 3) if len(rates) >= 2 and max(rates) > 0 else None
    return {
        "attribute": attribute,
        "groups": groups,
        "disparity": disparity,
        "n": len(p),
        "min_group": min_group,
    }


def first_fairness_report(attributes: list[str], *, tries: int = 6) -> dict:
    """The report for the first attribute (protected ones first) that actually splits leads into groups."""
    report: dict = {
        "attribute": attributes[0] if attributes else "country",
        "groups": [],
        "disparity": None,
        "n": 0,
    }
    field_names = {f.name for f in Lead._meta.concrete_fields}
    tried = 0
    for attribute in attributes:
        present = (
            Lead.objects.exclude(**{attribute: ""}).exists()
            if attribute in LEAD_ATTRIBUTES and attribute in field_names
            else Lead.objects.filter(custom__has_key=attribute).exists()
        )
        if not present:
            continue
        tried += 1
        if tried > tries:
            break
        report = fairness_report(attribute)
        if len([g for g in report["groups"] if g["group"] != "(not given)"]) >= 2:
            return report
    return report


def protected_in_use() -> list[str]:
    """Sanity line for the page: protected names that a promoted model uses (should be none)."""
    promoted = ModelVersion.objects.filter(is_promoted=True).values_list("features", flat=True).first() or []
    names = list(ProtectedAttribute.objects.values_list("name", flat=True))
    from scoring.ml.features import is_protected

    return [f for f in promoted if is_protected(f, names)]
