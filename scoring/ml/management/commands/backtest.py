"""Backtest the predictive model on a CSV export of historical leads (one row a lead)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.core.management.base import BaseCommand, CommandError, CommandParser

from scoring.ml.pipeline import PipelineError, select_and_fit


class Command(BaseCommand):
    help = (
        "Run the product's feature pipeline and model selection on FILE.csv with stratified k-fold CV; "
        'the last line is JSON {"rows","model","roc_auc","pr_auc","brier","lift_top_decile","fit_seconds"}.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="CSV file, one row per lead, with a header row")
        parser.add_argument("--target", required=True, help="column holding the outcome")
        parser.add_argument(
            "--positive", help="value of the target that means converted (default: 1/yes/true)"
        )
        parser.add_argument("--sep", default=",", help="field separator (default ','); use '\\t' for tabs")
        parser.add_argument(
            "--drop", default="", help="comma-separated columns to leave out (e.g. leaking ones)"
        )
        parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        frame = read_export(str(options["file"]), sep=str(options["sep"]))
        target = str(options["target"])
        if target not in frame.columns:
            shown = ", ".join(map(str, list(frame.columns)[:12]))
            raise CommandError(f"Target column {target!r} is not in the file. Columns found: {shown}.")
        drop = [c.strip() for c in str(options["drop"]).split(",") if c.strip()]
        unknown = [c for c in drop if c not in frame.columns]
        if unknown:
            raise CommandError(f"--drop names columns that are not in the file: {', '.join(unknown)}.")
        frame = frame[frame[target].notna()]
        y = target_labels(frame[target], options.get("positive"))
        features = frame.drop(columns=[target, *drop])
        try:
            scorer = select_and_fit(features, y, folds=int(options["folds"]), seed=int(options["seed"]))
        except PipelineError as exc:
            raise CommandError(str(exc)) from None
        m = scorer.metrics
        for name, reason in m["dropped_columns"].items():
            self.stderr.write(f"dropped {name!r}: {reason}")
        for name, figures in m["candidates"].items():
            self.stdout.write(f"{name}: {json.dumps(figures)}")
        result = {key: m[key] for key in ("rows", "model", "roc_auc", "pr_auc", "brier", "lift_top_decile")}
        result["fit_seconds"] = m["fit_seconds"]
        self.stdout.write(json.dumps(result))


def read_export(path: str, *, sep: str) -> pd.DataFrame:
    """Read the CSV or raise CommandError saying what is wrong with it."""
    sep = "\t" if sep in ("\\t", "tab") else sep
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"No such file: {path}")
    if file.stat().st_size == 0:
        raise CommandError(f"{path} is empty: export it again with a header row and one row per lead.")
    try:
        frame = pd.read_csv(file, sep=sep, dtype=str, keep_default_na=True, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise CommandError(
            f"{path} is empty: export it again with a header row and one row per lead."
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"Could not read {path} as CSV with separator {sep!r}: {exc}") from None
    if frame.empty:
        raise CommandError(f"{path} has a header but no rows.")
    if frame.shape[1] == 1:
        guess = next((s for s in (",", ";", "\t", "|") if s != sep and s in str(frame.columns[0])), None)
        hint = f" It looks separated by {guess!r}: pass --sep '{guess}'." if guess else ""
        raise CommandError(f"{path} has a single column with separator {sep!r}.{hint}")
    return frame


def target_labels(column: pd.Series, positive: object) -> np.ndarray:
    """1 for the converted rows, 0 otherwise."""
    values = column.astype(str).str.strip()
    if positive is not None:
        if not (values == str(positive)).any():
            raise CommandError(
                f"No row has target value {positive!r}. Values seen: {', '.join(values.unique()[:10])}."
            )
        return (values == str(positive)).to_numpy(dtype=float)
    lowered = values.str.casefold()
    distinct = set(lowered.unique())
    for yes in ("1", "1.0", "yes", "true", "won", "converted", "y"):
        if yes in distinct:
            if len(distinct) > 2:
                raise CommandError(
                    f"The target has {len(distinct)} distinct values; say which means converted with --positive."
                )
            return (lowered == yes).to_numpy(dtype=float)
    if len(distinct) == 1:
        raise CommandError(
            f"The target has only one value ({values.iloc[0]!r}); the model needs two classes."
        )
    raise CommandError(
        f"Cannot tell which target value means converted ({', '.join(sorted(distinct)[:10])}); pass --positive."
    )
