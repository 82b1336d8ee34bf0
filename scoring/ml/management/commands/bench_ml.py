"""Benchmark predictive scoring: train on N closed leads, then predict for M leads in the scoring path."""

from __future__ import annotations

import json
import time

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils import timezone
from threadpoolctl import threadpool_limits

from leadcrm.models import Interaction, Lead
from scoring.ml import services, synthetic
from scoring.ml.features import build_batch
from scoring.ml.models import ModelVersion, PredictionSnapshot


class Command(BaseCommand):
    help = (
        "Train on --train synthetic closed leads and predict for --predict leads (chunks of --chunk) on "
        "PostgreSQL; prints JSON as the last line. Use a database of its own: --fresh deletes every lead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--train", type=int, default=100_000)
        parser.add_argument("--predict", type=int, default=1_000_000)
        parser.add_argument("--chunk", type=int, default=20_000)
        parser.add_argument(
            "--fresh", action="store_true", help="delete all leads, models and snapshots first"
        )

    def handle(self, *args: object, **options: object) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("Run the benchmark on PostgreSQL: set DATABASE_URL to a database of its own.")
        n_train, n_predict, chunk = int(options["train"]), int(options["predict"]), int(options["chunk"])
        if not options["fresh"] and Lead.objects.exists():
            raise CommandError(
                "This database has leads. Pass --fresh to delete them (only on a bench database)."
            )
        now = timezone.now()
        with threadpool_limits(1):
            if options["fresh"]:
                self.stdout.write("Deleting old data…")
                with connection.cursor() as cursor:
                    cursor.execute(
                        "TRUNCATE ml_predictionsnapshot, ml_modelversion, ml_trainingrun, "
                        f"{Interaction._meta.db_table}, {Lead._meta.db_table} CASCADE"
                    )
            started = time.perf_counter()
            self.stdout.write(f"Inserting {n_train:,} closed leads with their history…")
            synthetic.make_history(n_train, now=now, seed=1, closed_share=1.0)
            n_open = max(n_predict - Lead.objects.count(), 0)
            self.stdout.write(f"Inserting {n_open:,} open leads…")
            for start in range(0, n_open, 250_000):
                synthetic.make_history(
                    min(250_000, n_open - start), now=now, seed=2 + start, closed_share=0.0
                )
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {Lead._meta.db_table}; ANALYZE {Interaction._meta.db_table}")
            setup_s = time.perf_counter() - started
            won, lost = services.outcome_counts(now=now)
            self.stdout.write(f"Training on {won + lost:,} outcomes ({won:,} won)…")
            started = time.perf_counter()
            outcome = services.train_and_promote(now=now)
            train_s = time.perf_counter() - started
            version = ModelVersion.objects.filter(is_promoted=True).first()
            if version is None:
                raise CommandError(f"No model was promoted: {outcome.message}")

            ids = np.array(list(Lead.objects.order_by("id").values_list("id", flat=True)[:n_predict]))
            self.stdout.write(f"Predicting {len(ids):,} leads in chunks of {chunk:,}…")
            snapshots_before = PredictionSnapshot.objects.count()
            started = time.perf_counter()
            scored = 0
            for start in range(0, len(ids), chunk):
                result = services.predict_for_leads(ids[start : start + chunk].tolist(), now=now)
                scored += int(np.isfinite(result.probability).sum())
            predict_s = time.perf_counter() - started
            snapshots = PredictionSnapshot.objects.count() - snapshots_before

            # The model alone (features already built), to show where the time goes.
            _, scorer = services.load_promoted()
            batch = build_batch(
                Lead.objects.filter(pk__in=ids[:chunk].tolist()),
                now=now,
                custom_keys=[
                    c.removeprefix("custom.") for c in scorer.schema.names if c.startswith("custom.")
                ],
            )
            started = time.perf_counter()
            X = scorer.schema.encode(batch.frame)
            _, effects = scorer.explain(X)
            scorer.factors(X, effects)
            model_only_rps = len(X) / (time.perf_counter() - started)
        result = {
            "train_leads": int(won + lost),
            "train_seconds": round(train_s, 1),
            "model": version.algorithm,
            "cv_roc_auc": version.metrics.get("roc_auc"),
            "time_split_roc_auc": version.metrics.get("time_split", {}).get("roc_auc"),
            "predict_leads": int(len(ids)),
            "predicted": scored,
            "snapshots_written": snapshots,
            "predict_seconds": round(predict_s, 1),
            "predict_rows_per_s": round(len(ids) / predict_s),
            "model_only_rows_per_s": round(model_only_rps),
            "chunk": chunk,
            "threads": 1,
            "setup_seconds": round(setup_s, 1),
        }
        self.stdout.write(json.dumps(result))
