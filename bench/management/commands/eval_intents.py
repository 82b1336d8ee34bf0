"""Top-1 accuracy of the FAQ matcher on an intent data set (default: BANKING77, its own split)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbot.intents import FaqMatcher


class Command(BaseCommand):
    help = (
        "Fit the FAQ matcher on the train rows (each intent = one FAQ entry, its texts = variants) and "
        'report top-1 accuracy on the test rows. Last line is JSON {"dataset","entries","variants",'
        '"questions","top1_accuracy","answered_rate","answered_accuracy","fit_seconds","ms_per_question"}.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file",
            default=str(settings.SHARED_DATA_DIR / "banking77_intents.csv"),
            help="CSV: text, category, split",
        )
        parser.add_argument(
            "--threshold", type=float, default=0.35, help="confidence threshold for the answered-rate figures"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(str(options["file"]))
        if not path.exists():
            raise CommandError(f"{path} does not exist; pass --file with a CSV of text, category, split.")
        frame = pd.read_csv(path)
        missing = {"text", "category", "split"} - set(frame.columns)
        if missing:
            raise CommandError(f"{path} lacks the column(s) {', '.join(sorted(missing))}.")
        train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
        if train.empty or test.empty:
            raise CommandError("Need both train and test rows (split column).")
        labels = {name: i for i, name in enumerate(sorted(train["category"].unique()))}
        entries = [(labels[name], group["text"].tolist()) for name, group in train.groupby("category")]

        started = time.perf_counter()
        matcher = FaqMatcher(entries)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        scores = matcher.scores(test["text"].tolist())
        predict_seconds = time.perf_counter() - started
        best = np.argmax(scores, axis=1)
        predicted = np.asarray(matcher.entry_ids)[best]
        confidence = scores[np.arange(len(best)), best]
        truth = test["category"].map(labels).fillna(-1).to_numpy()
        correct = predicted == truth
        answered = confidence >= float(options["threshold"])
        result = {
            "dataset": path.name,
            "entries": len(entries),
            "variants": len(train),
            "questions": len(test),
            "top1_accuracy": round(float(correct.mean()), 4),
            "threshold": float(options["threshold"]),
            "answered_rate": round(float(answered.mean()), 4),
            "answered_accuracy": round(float(correct[answered].mean()) if answered.any() else 0.0, 4),
            "fit_seconds": round(fit_seconds, 2),
            "ms_per_question": round(predict_seconds * 1000 / len(test), 3),
        }
        self.stdout.write(
            f"{result['questions']} held-out questions, {result['entries']} intents: "
            f"top-1 accuracy {result['top1_accuracy']:.3f}; above the threshold {result['answered_rate']:.0%} "
            f"answered with accuracy {result['answered_accuracy']:.3f}."
        )
        self.stdout.write(json.dumps(result))
