"""Macro-F1 of the chat's sentiment model (VADER) on a labelled CSV; evaluation only.

The airline tweets set is CC BY-NC-SA: it is used here only to measure, never to train or tune
anything that ships.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from sklearn.metrics import accuracy_score, f1_score

from chatbot.sentiment import sentiment_label, sentiment_score


class Command(BaseCommand):
    help = (
        "Score each text with VADER, map to positive/neutral/negative and report macro-F1. "
        'Last line is JSON {"dataset","rows","macro_f1","accuracy","negative_f1"}.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file", default=str(settings.SHARED_DATA_DIR / "airline_tweets_sentiment_train70.csv")
        )
        parser.add_argument("--text-column", default="text")
        parser.add_argument("--label-column", default="airline_sentiment")

    def handle(self, *args: object, **options: object) -> None:
        path = Path(str(options["file"]))
        if not path.exists():
            raise CommandError(f"{path} does not exist; pass --file.")
        frame = pd.read_csv(path)
        text_col, label_col = str(options["text_column"]), str(options["label_column"])
        if not {text_col, label_col} <= set(frame.columns):
            raise CommandError(f"{path} needs the columns {text_col!r} and {label_col!r}.")
        frame = frame.dropna(subset=[text_col, label_col])
        predicted = [sentiment_label(sentiment_score(str(t))) for t in frame[text_col]]
        truth = frame[label_col].astype(str).str.lower().tolist()
        result = {
            "dataset": path.name,
            "rows": len(frame),
            "model": "vader",
            "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 4),
            "accuracy": round(float(accuracy_score(truth, predicted)), 4),
            "negative_f1": round(float(f1_score(truth, predicted, labels=["negative"], average="macro")), 4),
        }
        self.stdout.write(f"VADER on {result['rows']} texts: macro-F1 {result['macro_f1']:.3f}.")
        self.stdout.write(json.dumps(result))
