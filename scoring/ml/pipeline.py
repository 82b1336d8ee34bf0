"""The one tabular pipeline: type inference, encoding, model selection, calibration, explanations.

Pure: pandas/numpy in, fitted objects and arrays out; no ORM. The CRM training path
(`scoring.ml.services`) and the `backtest` command (a CSV export) both call `select_and_fit`, so a
business evaluating us on its own export sees the same model the product would train.

Design choices that must hold on exports nobody here has seen:
- Column types are inferred from values, not names: numbers written as strings ("1,200", "45%"),
  yes/no flags, dates, categories, identifiers and free text.
- Form placeholders ("Select", "N/A", "--", "unknown") mean "not answered": they become missing,
  and missing is its own category, so the fact that nobody answered is still usable.
- Categories are normalised (case, spaces) and rare values grouped, so "Google"/"google" and
  one-off typos do not become features.
- Identifier-like columns (unique per row) and constant columns are dropped; a leakage guard drops
  any single feature that on its own almost perfectly predicts the label.
- Two candidates, each calibrated (Platt scaling fitted on out-of-fold scores): a regularised
  logistic regression on binned/one-hot features (its per-lead explanation is exact) and a
  histogram gradient boosting model with native categorical splits (explained by an additive
  partial-dependence approximation whose fidelity is measured and stored).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii  # json.dumps' own C string encoder
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

MISSING = "(missing)"
OTHER = "(other)"
# Values web forms and spreadsheets use for "not answered". Compared after normalisation.
PLACEHOLDERS = frozenset(
    {
        "",
        "select",
        "select one",
        "please select",
        "-- select --",
        "--select--",
        "choose",
        "choose one",
        "n/a",
        "na",
        "nan",
        "none",
        "null",
        "nil",
        "unknown",
        "not specified",
        "not provided",
        "-",
        "--",
        "?",
    }
)
_BOOL_WORDS = {"yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0, "y": 1.0, "n": 0.0, "t": 1.0, "f": 0.0}
_ID_NAME = re.compile(r"(^|[^a-z])(id|uuid|guid|key|identifier)([^a-z]|$)|(number|_no|num)$", re.IGNORECASE)
_NUMBER_CLEAN = re.compile(r"[\s$€£¥,%]")

LEAK_AUC = 0.99  # a single feature this predictive on its own is almost surely filled at closing
MAX_LEVELS = 50  # categories kept per column (HistGradientBoosting allows up to 255)
N_BINS = 10  # quantile bins per numeric column for the linear model


def normalise_text(value: object) -> str:
    """Case- and space-insensitive form of a category; placeholders become MISSING."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    text = " ".join(str(value).split()).casefold()
    return MISSING if text in PLACEHOLDERS else text


def _parse_numbers(values: pd.Series) -> pd.Series:
    """Numbers written as text ("1,200", "$30", "45%") to floats; anything else NaN."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    parsed = pd.to_numeric(
        pd.Series([_NUMBER_CLEAN.sub("", str(u)) for u in uniques], dtype=object), errors="coerce"
    ).to_numpy(dtype=float)
    out = np.full(len(values), np.nan)
    known = codes >= 0
    out[known] = parsed[codes[known]]
    return pd.Series(out, index=values.index)


# --- Column specs -----------------------------------------------------------------------------


@dataclass
class ColumnSpec:
    """How one input column becomes one model feature."""

    name: str
    kind: str  # "numeric" | "categorical"
    label: str = ""  # plain words for explanations, e.g. "Lead source"
    levels: list[str] = field(default_factory=list)  # categorical: kept levels; MISSING and OTHER last
    edges: np.ndarray | None = None  # numeric: inner quantile bin edges for the linear model
    median: float = 0.0
    unit_format: str | None = None  # numeric explanation template, e.g. "Spent {v:.0f} min on the site"
    boolean: bool = False  # numeric read from yes/no, true/false words

    def encode(self, values: pd.Series) -> np.ndarray:
        """Numeric: float array with NaN for missing; categorical: int codes into `levels`."""
        if self.kind == "numeric" and self.boolean:
            codes, uniques = pd.factorize(values, use_na_sentinel=True)
            lookup = np.array([_BOOL_WORDS.get(normalise_text(u), np.nan) for u in uniques] + [np.nan])
            return lookup[codes]
        if self.kind == "numeric":
            return _parse_numbers(values).to_numpy(dtype=float)
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        index = {level: i for i, level in enumerate(self.levels)}
        other, missing = index[OTHER], index[MISSING]
        # Normalise the few distinct values, not the many rows.
        lookup = np.array([index.get(normalise_text(u), other) for u in uniques] + [missing], dtype=np.int32)
        if len(uniques) and any(normalise_text(u) == MISSING for u in uniques):
            lookup[[i for i, u in enumerate(uniques) if normalise_text(u) == MISSING]] = missing
        return lookup[codes]  # code -1 (NaN) picks the last entry: MISSING

    def value_label(self, value: float) -> str:
        """Plain words for one lead's value of this feature."""
        name = self.label or self.name
        if self.kind == "categorical":
            level = self.levels[int(value)]
            if level == MISSING:
                return f"{name}: not given"
            return f"{name}: {'other' if level == OTHER else level}"
        if math.isnan(value):
            return f"{name}: not given"
        if self.unit_format:
            return self.unit_format.format(v=value)
        if self.boolean:
            return f"{name}: {'yes' if value else 'no'}"
        shown = f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.2f}"
        return f"{name}: {shown}"


@dataclass
class Schema:
    """The inferred input columns and why others were left out."""

    columns: list[ColumnSpec]
    dropped: dict[str, str]  # column -> reason

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """One float matrix, one column per spec (categorical codes as floats)."""
        out = np.empty((len(frame), len(self.columns)), dtype=float)
        for j, spec in enumerate(self.columns):
            if spec.name in frame.columns:
                out[:, j] = spec.encode(frame[spec.name])
            else:  # a column absent at prediction time counts as missing
                out[:, j] = np.nan if spec.kind == "numeric" else spec.levels.index(MISSING)
        return out


def infer_schema(
    frame: pd.DataFrame,
    *,
    labels: dict[str, str] | None = None,
    formats: dict[str, str] | None = None,
    numeric: set[str] | frozenset[str] = frozenset(),
) -> Schema:
    """Decide per column: numeric, categorical, or dropped (constant, identifier, free text)."""
    labels, formats = labels or {}, formats or {}
    n = len(frame)
    columns: list[ColumnSpec] = []
    dropped: dict[str, str] = {}
    min_count = max(10, int(0.002 * n))
    for name in frame.columns:
        raw = frame[name]
        label = labels.get(name, str(name))
        if name in numeric:
            numbers = raw.astype(float)
            if numbers.isna().all() or (numbers.nunique() <= 1 and numbers.notna().all()):
                dropped[name] = "always empty" if numbers.isna().all() else "constant"
                continue
            columns.append(_numeric_spec(name, numbers, label, formats.get(name)))
            continue
        text = raw.map(normalise_text) if not pd.api.types.is_numeric_dtype(raw) else None
        present = raw.notna() if text is None else text != MISSING
        n_present = int(present.sum())
        if n_present == 0:
            dropped[name] = "always empty"
            continue
        # Numbers, possibly written as text; yes/no flags become 0/1.
        numbers = _parse_numbers(raw)
        boolean = False
        if text is not None:
            bool_values = text[present].map(_BOOL_WORDS)
            if bool_values.notna().all() and text[present].nunique() <= 2:
                numbers = text.map(_BOOL_WORDS).astype(float)
                boolean = True
        parsed_share = float(numbers[present].notna().mean())
        if parsed_share >= 0.95:
            distinct = numbers.nunique(dropna=True)
            if distinct <= 1 and n_present == n:
                dropped[name] = "constant"
                continue
            finite = numbers.dropna()
            is_int = bool(np.all(np.isclose(finite, np.round(finite))))
            if is_int and distinct == n_present and n_present >= 0.95 * n and n >= 20:
                dropped[name] = "identifier (a different whole number on every row)"
                continue
            if _ID_NAME.search(str(name)) and distinct >= 0.5 * n_present and is_int:
                dropped[name] = "identifier (name and values look like an id)"
                continue
            numbers = numbers.where(present, np.nan)
            spec = _numeric_spec(name, numbers, label, formats.get(name))
            spec.boolean = boolean
            columns.append(spec)
            continue
        # Dates: only when nearly every present value parses as one.
        sample = text[present].head(200) if text is not None else raw[present].head(200)
        if _looks_like_dates(raw[present].head(200)) and text is not None:
            when = pd.to_datetime(raw.where(present), errors="coerce", format="mixed", utc=True)
            days = (when - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds() / 86400.0
            if days.notna().mean() >= 0.5 * present.mean():
                columns.append(_numeric_spec(name, days.astype(float), f"{label} (days since 1970)", None))
                continue
        del sample
        if text is None:  # numeric columns always parse above
            dropped[name] = "not readable as numbers or text"
            continue
        counts = text.value_counts()
        distinct = int((counts.index != MISSING).sum())
        if distinct <= 1 and not text.eq(MISSING).any():
            dropped[name] = "constant"
            continue
        if distinct >= 0.9 * n_present and n_present >= 0.5 * n:
            dropped[name] = "identifier or free text (a different value on almost every row)"
            continue
        kept = [v for v, c in counts.items() if v != MISSING and c >= min_count][:MAX_LEVELS]
        if not kept and distinct > 1:
            dropped[name] = "free text (no value repeats often enough to learn from)"
            continue
        spec = ColumnSpec(name=name, kind="categorical", label=label, levels=[*kept, OTHER, MISSING])
        columns.append(spec)
    return Schema(columns=columns, dropped=dropped)


def _numeric_spec(name: str, numbers: pd.Series, label: str, unit_format: str | None) -> ColumnSpec:
    finite = numbers.dropna().to_numpy(dtype=float)
    if len(finite):
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, N_BINS + 1)[1:-1]))
        median = float(np.median(finite))
    else:
        edges, median = np.array([]), 0.0
    return ColumnSpec(
        name=name, kind="numeric", label=label, edges=edges, median=median, unit_format=unit_format
    )


def _looks_like_dates(values: pd.Series) -> bool:
    if values.empty or pd.api.types.is_numeric_dtype(values):
        return False
    strings = values.astype(str)
    if not strings.str.contains(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}", regex=True).mean() >= 0.95:
        return False
    parsed = pd.to_datetime(strings, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= 0.95)


# --- Leakage guard ----------------------------------------------------------------------------


def single_feature_auc(column: np.ndarray, y: np.ndarray, *, categorical: bool) -> float:
    """How well this one feature ranks the label on its own (0.5 = not at all, 1 = perfectly)."""
    if categorical:
        codes = column.astype(int)
        totals = np.bincount(codes)
        positives = np.bincount(codes, weights=y, minlength=len(totals))
        score = (positives / np.maximum(totals, 1))[codes]
    else:
        score = np.where(np.isnan(column), np.nanmin(column) - 1 if np.isfinite(column).any() else 0, column)
    if np.unique(score).size < 2:
        return 0.5
    auc = roc_auc_score(y, score)
    return max(auc, 1.0 - auc)


def leaking_features(X: np.ndarray, y: np.ndarray, schema: Schema, *, threshold: float = LEAK_AUC) -> dict:
    """Features that on their own separate won from lost almost perfectly: {name: auc}."""
    found = {}
    for j, spec in enumerate(schema.columns):
        auc = single_feature_auc(X[:, j], y, categorical=spec.kind == "categorical")
        if auc >= threshold:
            found[spec.name] = round(float(auc), 4)
    return found


# --- Candidate models -------------------------------------------------------------------------


def _edges(spec: ColumnSpec) -> np.ndarray:
    """A numeric column's bin edges (every fitted numeric column has them)."""
    if spec.edges is None:
        raise PipelineError(f"Column {spec.name} has no bin edges; refit the model.")
    return spec.edges


class LinearModel:
    """L2 logistic regression on one-hot categories and quantile-binned numbers (a simple GAM).

    Every input column is one block of indicator columns with exactly one 1 per row, so a lead's
    log-odds is a sum of one weight per column: the explanation is exact.
    """

    kind = "logistic_regression"

    def __init__(self, schema: Schema, C: float = 1.0) -> None:
        self.schema = schema
        self.C = C
        sizes = []
        for spec in schema.columns:
            sizes.append(len(spec.levels) if spec.kind == "categorical" else len(_edges(spec)) + 2)
        self.sizes = np.array(sizes, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        self.width = int(self.sizes.sum())

    def _slots(self, X: np.ndarray) -> np.ndarray:
        """Per row and column, which indicator is on (global column index)."""
        slots = np.empty(X.shape, dtype=np.int64)
        for j, spec in enumerate(self.schema.columns):
            if spec.kind == "categorical":
                slots[:, j] = X[:, j].astype(np.int64)
            else:
                values = X[:, j]
                edges = _edges(spec)
                bins = np.searchsorted(edges, values, side="right")
                slots[:, j] = np.where(np.isnan(values), len(edges) + 1, bins)
        return slots + self.offsets

    def _design(self, X: np.ndarray) -> sp.csr_matrix:
        slots = self._slots(X)
        n, m = slots.shape
        data = np.ones(n * m, dtype=float)
        return sp.csr_matrix((data, slots.ravel(), np.arange(0, n * m + 1, m)), shape=(n, self.width))

    def fit(self, X: np.ndarray, y: np.ndarray) -> LinearModel:
        design = self._design(X)
        self.model = LogisticRegression(C=self.C, max_iter=2000, solver="lbfgs")
        self.model.fit(design, y)
        self.coef = self.model.coef_.ravel()
        counts = np.asarray(design.sum(axis=0)).ravel()
        # Mean weight per column block: contributions are measured against the average lead.
        self.block_means = np.array(
            [
                float(np.dot(self.coef[o : o + s], counts[o : o + s]) / max(counts[o : o + s].sum(), 1))
                for o, s in zip(self.offsets, self.sizes, strict=True)
            ]
        )
        self.base = float(self.model.intercept_[0] + self.block_means.sum())
        return self

    def decision(self, X: np.ndarray) -> np.ndarray:
        return self.contributions(X).sum(axis=1) + self.base

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        contributions = self.contributions(X)
        return contributions.sum(axis=1) + self.base, contributions

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact log-odds contribution of each column, relative to the average lead."""
        return self.coef[self._slots(X)] - self.block_means


class BoostedModel:
    """Histogram gradient boosting with native categorical splits and early stopping."""

    kind = "hist_gradient_boosting"

    def __init__(self, schema: Schema, random_state: int = 0) -> None:
        self.schema = schema
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> BoostedModel:
        categorical = np.array([spec.kind == "categorical" for spec in self.schema.columns], dtype=bool)
        self.model = HistGradientBoostingClassifier(
            learning_rate=0.1,
            max_iter=500,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            categorical_features=categorical if categorical.any() else None,
            early_stopping=True,
            validation_fraction=0.15,
            n_iter_no_change=30,
            random_state=self.random_state,
        )
        empty = np.isnan(X).all(axis=0)
        if empty.any():  # a column with no values in this fold: constant for the trees, never split on
            X = X.copy()
            X[:, empty] = 0.0
        self.model.fit(X, y)
        self._keep_best_iterations()
        return self

    def _keep_best_iterations(self) -> None:
        """Drop the trees fitted after the best validation score (early stopping keeps them).

        Early stopping ends `n_iter_no_change` rounds after the best round; those last rounds did
        not help on held-out data and cost prediction time in every scoring batch (about a
        quarter of the trees). The usual "best iteration" of gradient boosting libraries.
        """
        scores = getattr(self.model, "validation_score_", None)
        predictors = getattr(self.model, "_predictors", None)
        if scores is None or predictors is None or len(scores) < 2:
            return
        best = int(np.argmax(scores))  # scores[i]: after i rounds (scores[0]: before any tree)
        if 1 <= best < len(predictors):
            self.model._predictors = predictors[:best]

    def decision(self, X: np.ndarray) -> np.ndarray:
        try:
            return self._decision_binned(X)
        except (AttributeError, TypeError):  # a scikit-learn without these internals: the public path
            return self.model.decision_function(X)

    def _decision_binned(self, X: np.ndarray) -> np.ndarray:
        """`decision_function`, but the trees walk the 1-byte bins instead of the raw floats.

        The same numbers: a numeric split `x <= threshold` is `bin <= threshold bin` by how the
        bins are made, missing values go the same way, and categories the trees never saw are
        already missing once the model's own encoder has run. About a third less time, and the
        trees are most of the scoring path's model time. scikit-learn is pinned; a test compares
        both paths on unseen categories and missing values.
        """
        m = self.model
        binned = m._bin_mapper.transform(m._preprocess_X(X, reset=False))
        raw = np.zeros((len(X), 1), dtype=m._baseline_prediction.dtype, order="F")
        raw += m._baseline_prediction
        m._predict_iterations(binned, m._predictors, raw, True, 1)
        return raw[:, 0]

    def prepare_explanations(self, X: np.ndarray, *, sample: int = 400, seed: int = 0) -> float:
        """Precompute one partial-dependence curve per column; returns the approximation's fidelity.

        A lead's factor for a column is the centred partial dependence at its value: how the model's
        log-odds moves, on average over real leads, when only that column changes. Their sum is an
        additive approximation of the model; `fidelity` (R² against the real log-odds) says how good.
        """
        rng = np.random.default_rng(seed)
        rows = X[rng.choice(len(X), size=min(sample, len(X)), replace=False)]
        self.base = float(self.decision(rows).mean())
        self.grids: list[np.ndarray] = []
        self.curves: list[np.ndarray] = []
        for j, spec in enumerate(self.schema.columns):
            if spec.kind == "categorical":
                grid = np.arange(len(spec.levels), dtype=float)
            else:
                finite = X[:, j][~np.isnan(X[:, j])]
                grid = np.unique(np.quantile(finite, np.linspace(0, 1, 21))) if len(finite) else np.array([])
                grid = np.append(grid, np.nan)  # the last point: value missing
            probe = np.repeat(rows, len(grid), axis=0)
            probe[:, j] = np.tile(grid, len(rows))
            curve = self.decision(probe).reshape(len(rows), len(grid)).mean(axis=0) - self.base
            self.grids.append(grid)
            self.curves.append(curve)
        approx = self.contributions(rows).sum(axis=1) + self.base
        actual = self.decision(rows)
        var = float(np.var(actual))
        self.fidelity = float(1 - np.mean((actual - approx) ** 2) / var) if var > 0 else 1.0
        return self.fidelity

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.decision(X), self.contributions(X)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        out = np.empty(X.shape, dtype=float)
        for j, spec in enumerate(self.schema.columns):
            grid, curve = self.grids[j], self.curves[j]
            if spec.kind == "categorical":
                out[:, j] = curve[X[:, j].astype(np.int64)]
                continue
            values = X[:, j]
            if len(grid) > 1:
                points = np.interp(np.nan_to_num(values, nan=grid[0]), grid[:-1], curve[:-1])
            else:
                points = np.zeros(len(values))
            out[:, j] = np.where(np.isnan(values), curve[-1], points)
        return out


class BlendModel:
    """The average of the two calibrated candidates' log-odds: often steadier than either alone.

    Chosen by the same cross-validated ROC-AUC as the others; its out-of-fold scores come from the
    two candidates' own folds, so it costs no extra cross-validation fits.
    """

    kind = "blend"

    def __init__(self, schema: Schema, weights: tuple[float, float, float, float] = (1.0, 0.0, 1.0, 0.0)):
        self.schema = schema
        self.linear = LinearModel(schema)
        self.boosted = BoostedModel(schema)
        self.weights = weights  # Platt (slope, intercept) of the linear and of the boosted part

    def fit(self, X: np.ndarray, y: np.ndarray) -> BlendModel:
        self.linear.fit(X, y)
        self.boosted.fit(X, y)
        return self

    def combine(self, linear: np.ndarray, boosted: np.ndarray) -> np.ndarray:
        a1, c1, a2, c2 = self.weights
        return 0.5 * (a1 * linear + c1 + a2 * boosted + c2)

    def decision(self, X: np.ndarray) -> np.ndarray:
        return self.combine(self.linear.decision(X), self.boosted.decision(X))

    def prepare_explanations(self, X: np.ndarray, *, seed: int = 0) -> float:
        self.boosted.prepare_explanations(X, seed=seed)
        rng = np.random.default_rng(seed)
        rows = X[rng.choice(len(X), size=min(400, len(X)), replace=False)]
        actual = self.decision(rows)
        approx = self.contributions(rows).sum(axis=1)
        approx += float(np.mean(actual - approx))
        var = float(np.var(actual))
        self.fidelity = float(1 - np.mean((actual - approx) ** 2) / var) if var > 0 else 1.0
        return self.fidelity

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a1, _, a2, _ = self.weights
        linear, linear_parts = self.linear.explain(X)
        boosted, boosted_parts = self.boosted.explain(X)
        return self.combine(linear, boosted), 0.5 * (a1 * linear_parts + a2 * boosted_parts)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        a1, _, a2, _ = self.weights
        return 0.5 * (a1 * self.linear.contributions(X) + a2 * self.boosted.contributions(X))


CANDIDATES: dict[str, Callable[[Schema], Any]] = {
    LinearModel.kind: LinearModel,
    BoostedModel.kind: BoostedModel,
}
DEFAULT_CANDIDATES = (LinearModel.kind, BoostedModel.kind, BlendModel.kind)


# --- The fitted scorer ------------------------------------------------------------------------


@dataclass
class Scorer:
    """What is stored in a model version: schema, chosen model, calibration, explanation tables."""

    schema: Schema
    model: Any
    slope: float  # Platt calibration: p = sigmoid(slope * raw + intercept)
    intercept: float
    metrics: dict

    @property
    def kind(self) -> str:
        return self.model.kind

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        with threadpool_limits(1):
            raw = self.model.decision(X)
        return _sigmoid(self.slope * raw + self.intercept)

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probability, per-column effects in calibrated log-odds) for each row."""
        with threadpool_limits(1):
            raw, effects = self.model.explain(X)
        return _sigmoid(self.slope * raw + self.intercept), effects * self.slope

    def _top_factors(
        self, X: np.ndarray, effects: np.ndarray, *, top: int, min_effect: float
    ) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray, np.ndarray]:
        """Per row, the `top` strongest effects, strongest first.

        Returns (pairs, pair ids, effects, kept): `pairs` lists each distinct (feature, reason)
        of the batch once; `pair ids` (rows × top) index into it.
        """
        k = min(top, effects.shape[1])
        order = np.argpartition(-np.abs(effects), k - 1, axis=1)[:, :k]
        picked = np.take_along_axis(effects, order, axis=1)
        resort = np.argsort(-np.abs(picked), axis=1)
        order = np.take_along_axis(order, resort, axis=1)
        picked = np.round(np.take_along_axis(picked, resort, axis=1), 3)
        # Reasons are worded once per (column, value, direction) seen in the batch, not per lead:
        # one sort of all picked cells, then a new reason wherever the triple changes.
        specs = self.schema.columns
        columns = order.ravel()
        values = X[np.repeat(np.arange(len(X)), k), columns]
        raises = picked.ravel() > 0
        perm = np.lexsort((raises, values, columns))
        c, v, up = columns[perm], values[perm], raises[perm]
        new = np.ones(len(perm), dtype=bool)
        same_value = (v[1:] == v[:-1]) | (np.isnan(v[1:]) & np.isnan(v[:-1]))
        new[1:] = (c[1:] != c[:-1]) | ~same_value | (up[1:] != up[:-1])
        pair_ids: np.ndarray = np.empty(len(perm), dtype=np.int64)
        pair_ids[perm] = np.cumsum(new) - 1
        starts = np.flatnonzero(new)
        pairs = [
            (specs[j].name, f"{specs[j].value_label(x)}: {'raises' if r else 'lowers'}")
            for j, x, r in zip(c[starts].tolist(), v[starts].tolist(), up[starts].tolist(), strict=True)
        ]
        pair_ids = pair_ids.reshape(order.shape)
        return pairs, pair_ids, picked, np.abs(picked) >= min_effect

    def factors(self, X: np.ndarray, effects: np.ndarray, *, top: int = 4, min_effect: float = 0.05) -> list:
        """Per row, the strongest reasons in plain words: [{"feature","label","effect"}, …]."""
        if min(top, effects.shape[1]) == 0:
            return [[] for _ in range(len(X))]
        pairs, pair_ids, picked, keep = self._top_factors(X, effects, top=top, min_effect=min_effect)
        return [
            [
                {"feature": pairs[i][0], "label": pairs[i][1], "effect": e}
                for i, e, k in zip(row_ids, row_effects, row_keep, strict=True)
                if k
            ]
            for row_ids, row_effects, row_keep in zip(
                pair_ids.tolist(), picked.tolist(), keep.tolist(), strict=True
            )
        ]

    def factors_json(
        self, X: np.ndarray, effects: np.ndarray, *, top: int = 4, min_effect: float = 0.05
    ) -> list[str]:
        """`factors` as the JSON text stored on the lead, byte for byte what json.dumps writes.

        The scoring path stores text, so hundreds of thousands of small dicts are never built:
        each (feature, reason) is JSON-encoded once per batch, each distinct effect value once.
        """
        if min(top, effects.shape[1]) == 0:
            return ["[]"] * len(X)
        pairs, pair_ids, picked, keep = self._top_factors(X, effects, top=top, min_effect=min_effect)
        heads = np.array(
            [f'{{"feature": {_json_text(f)}, "label": {_json_text(lab)}, "effect": ' for f, lab in pairs],
            dtype=object,
        )
        # Effects are rounded to 3 decimals: few distinct values, each written once (as repr does).
        values, value_codes = np.unique(picked.ravel(), return_inverse=True)
        numbers = np.array([repr(v) + "}" for v in values.tolist()], dtype=object)
        # Every row as tokens ("[", head, number, ", ", …, "]\n"; "" where a row keeps fewer), then
        # one join and one split: no per-row Python call. Effects are sorted strongest first, so
        # the kept ones are a prefix of each row; JSON text never holds a raw line break.
        n, k = picked.shape
        kept = keep.sum(axis=1)[:, None]
        slot = np.arange(k)[None, :]
        tokens = np.full((n, 3 * k + 2), "", dtype=object)
        tokens[:, 0] = "["
        tokens[:, 1:-1:3] = np.where(slot < kept, heads[pair_ids], "")
        tokens[:, 2:-1:3] = np.where(slot < kept, numbers[value_codes.reshape(n, k)], "")
        tokens[:, 3:-1:3] = np.where(slot < kept - 1, ", ", "")
        tokens[:, -1] = "]\n"
        return "".join(tokens.ravel().tolist()).split("\n")[:-1]


def _json_text(text: str) -> str:
    """A string as json.dumps writes it (ASCII, escaped), without json.dumps' per-call overhead."""
    return encode_basestring_ascii(text)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


def _platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    calibrator = LogisticRegression(C=1e6, max_iter=1000)
    calibrator.fit(raw.reshape(-1, 1), y)
    return float(calibrator.coef_[0, 0]), float(calibrator.intercept_[0])


def lift_top_decile(y: np.ndarray, p: np.ndarray) -> float:
    """Conversion in the top-scored 10% divided by the overall conversion rate."""
    k = max(1, int(math.ceil(0.1 * len(y))))
    top = np.argsort(-p, kind="stable")[:k]
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else 0.0


def evaluate(y: np.ndarray, p: np.ndarray) -> dict:
    """The figures every report uses, rounded for display."""
    return {
        "roc_auc": round(float(roc_auc_score(y, p)), 4),
        "pr_auc": round(float(average_precision_score(y, p)), 4),
        "brier": round(float(brier_score_loss(y, p)), 4),
        "lift_top_decile": round(lift_top_decile(y, p), 3),
    }


class PipelineError(ValueError):
    """The data cannot be modelled as given (one class only, no usable columns, …)."""


def check_labels(y: np.ndarray, *, min_per_class: int = 2) -> None:
    values, counts = np.unique(y, return_counts=True)
    if len(values) < 2:
        raise PipelineError(
            "The target has only one class; the model needs both converted and not-converted rows."
        )
    if counts.min() < min_per_class:
        raise PipelineError(f"The smaller class has only {counts.min()} rows; need at least {min_per_class}.")


def select_and_fit(
    frame: pd.DataFrame,
    y: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    labels: dict[str, str] | None = None,
    formats: dict[str, str] | None = None,
    numeric: set[str] | frozenset[str] = frozenset(),
    candidates: tuple[str, ...] = DEFAULT_CANDIDATES,
    leak_threshold: float = LEAK_AUC,
    progress: Callable[[float, str], None] | None = None,
    max_cv_rows: int | None = 40_000,
) -> Scorer:
    """Infer the schema, drop leaks, cross-validate each candidate, keep the best, refit on all rows.

    Metrics (`scorer.metrics`) are out-of-fold: ROC-AUC, PR-AUC, Brier (each fold calibrated on the
    other folds only), lift in the top decile, for the chosen model and per candidate.
    """
    started = time.perf_counter()
    report = progress or (lambda _share, _msg: None)
    y = np.asarray(y, dtype=float)
    check_labels(y, min_per_class=folds)
    schema = infer_schema(frame, labels=labels, formats=formats, numeric=numeric)
    X = schema.encode(frame)
    leaks = leaking_features(X, y, schema, threshold=leak_threshold)
    if leaks:
        keep = [j for j, spec in enumerate(schema.columns) if spec.name not in leaks]
        for name, auc in leaks.items():
            schema.dropped[name] = f"leaks the outcome (alone it reaches ROC-AUC {auc})"
        schema.columns = [schema.columns[j] for j in keep]
        X = X[:, keep]
    if not schema.columns:
        raise PipelineError(
            "No usable feature columns remain after dropping identifiers, constants and leaks."
        )

    full_X, full_y = X, y
    if max_cv_rows and len(y) > max_cv_rows:
        # Model selection on a stratified sample keeps big CRMs inside the training budget; the
        # chosen model is still fitted on every row below.
        from sklearn.model_selection import train_test_split

        sample, _ = train_test_split(np.arange(len(y)), train_size=max_cv_rows, stratify=y, random_state=seed)
        X, y = X[np.sort(sample)], y[np.sort(sample)]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(X, y))
    fold_of = np.empty(len(y), dtype=int)
    for k, (_, test) in enumerate(splits):
        fold_of[test] = k
    per_candidate: dict[str, dict] = {}
    oof: dict[str, np.ndarray] = {}
    fitted = [name for name in candidates if name in CANDIDATES]
    steps = len(fitted) * folds + 1
    done = 0
    blend_weights = (1.0, 0.0, 1.0, 0.0)
    with threadpool_limits(1):
        for name in fitted:
            raw = np.empty(len(y))
            for train, test in splits:
                report(done / steps, f"Cross-validating {name.replace('_', ' ')}")
                model = CANDIDATES[name](schema).fit(X[train], y[train])
                raw[test] = model.decision(X[test])
                done += 1
            oof[name] = raw
            calibrated = _cross_fitted_platt(raw, y, fold_of, folds)
            per_candidate[name] = evaluate(y, calibrated)
        if BlendModel.kind in candidates and {LinearModel.kind, BoostedModel.kind} <= oof.keys():
            blend_weights = (*_platt(oof[LinearModel.kind], y), *_platt(oof[BoostedModel.kind], y))
            oof[BlendModel.kind] = BlendModel(schema, blend_weights).combine(
                oof[LinearModel.kind], oof[BoostedModel.kind]
            )
            calibrated = _cross_fitted_platt(oof[BlendModel.kind], y, fold_of, folds)
            per_candidate[BlendModel.kind] = evaluate(y, calibrated)
        best = max(per_candidate, key=lambda name: per_candidate[name]["roc_auc"])
        report(done / steps, f"Fitting the chosen model ({best.replace('_', ' ')}) on all rows")
        model = _make(best, schema, blend_weights).fit(full_X, full_y)
        slope, intercept = _platt(oof[best], y)
        fidelity = 1.0
        if hasattr(model, "prepare_explanations"):
            fidelity = model.prepare_explanations(full_X, seed=seed)
    oof_probability = _sigmoid(slope * oof[best] + intercept)
    metrics = {
        **per_candidate[best],
        "rows": len(full_y),
        "positives": int(full_y.sum()),
        "cv_rows": len(y),
        "model": best,
        "folds": folds,
        "candidates": per_candidate,
        "explanation_fidelity_r2": round(fidelity, 4),
        "features": schema.names,
        "dropped_columns": schema.dropped,
        "score_deciles": [round(float(q), 4) for q in np.quantile(oof_probability, np.linspace(0, 1, 11))],
        "fit_seconds": round(time.perf_counter() - started, 2),
    }
    report(1.0, "Done")
    return Scorer(schema=schema, model=model, slope=slope, intercept=intercept, metrics=metrics)


def _make(kind: str, schema: Schema, blend_weights: tuple[float, float, float, float]) -> Any:
    return BlendModel(schema, blend_weights) if kind == BlendModel.kind else CANDIDATES[kind](schema)


def _cross_fitted_platt(raw: np.ndarray, y: np.ndarray, fold_of: np.ndarray, folds: int) -> np.ndarray:
    """Calibrate each fold's scores with a calibrator fitted on the other folds only (honest Brier)."""
    out = np.empty(len(raw))
    for k in range(folds):
        test = fold_of == k
        slope, intercept = _platt(raw[~test], y[~test])
        out[test] = _sigmoid(slope * raw[test] + intercept)
    return out


def refit(scorer: Scorer, frame: pd.DataFrame, y: np.ndarray, *, seed: int = 0) -> Scorer:
    """The same schema and model kind fitted on more rows (e.g. all outcomes after the gate passed)."""
    y = np.asarray(y, dtype=float)
    X = scorer.schema.encode(frame)
    weights = getattr(scorer.model, "weights", (1.0, 0.0, 1.0, 0.0))
    with threadpool_limits(1):
        model = _make(scorer.kind, scorer.schema, weights).fit(X, y)
        if hasattr(model, "prepare_explanations"):
            model.prepare_explanations(X, seed=seed)
    return Scorer(
        schema=scorer.schema,
        model=model,
        slope=scorer.slope,
        intercept=scorer.intercept,
        metrics=scorer.metrics,
    )
