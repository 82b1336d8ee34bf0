"""Benchmark predictive scoring: train on N closed leads, then predict for M leads in the scoring path."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import time
from datetime import datetime
from typing import Any

import numpy as np
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, connections
from django.utils import timezone
from threadpoolctl import threadpool_limits

from bench import synthetic
from bench.processes import forget_inherited_connections
from leadcrm.models import Interaction, Lead
from scoring.ml import services
from scoring.ml.features import Batch, predict_batch
from scoring.ml.models import ModelVersion
from scoring.ml.pipeline import Scorer


def _worker_init() -> None:
    forget_inherited_connections()
    threadpool_limits(1)
    gc.freeze()  # as config.celery does in each worker process


_BATCHES: list[Batch] = []  # features built before forking: the model-only figure leaves SQL out


def _promoted_scorer() -> Scorer:
    loaded = services.load_promoted()
    if loaded is None:
        raise CommandError("No model is promoted.")
    return loaded[1]


def _model_only(index: int) -> int:
    scorer = _promoted_scorer()
    X = scorer.schema.encode(_BATCHES[index].frame)
    _, effects = scorer.explain(X)
    scorer.factors_json(X, effects)
    return len(X)


def _predict_chunk(job: tuple[list[int], datetime]) -> tuple[int, float]:
    lead_ids, now = job
    cpu = time.process_time()
    result = services.predict_for_leads(lead_ids, now=now)
    if result is None:
        raise CommandError("No model is promoted.")
    return int(np.isfinite(result.probability).sum()), time.process_time() - cpu


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
            "--workers",
            type=int,
            default=2,
            help="worker processes, one thread each (like Celery --concurrency 2)",
        )
        parser.add_argument("--fresh", action="store_true", help="delete all leads and models first")
        parser.add_argument(
            "--reuse",
            action="store_true",
            help="keep the leads a previous --fresh run inserted; delete only the models",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("Run the benchmark on PostgreSQL: set DATABASE_URL to a database of its own.")
        call_command("migrate", verbosity=0)  # a new, empty bench database works as it is
        n_train, n_predict, chunk = int(options["train"]), int(options["predict"]), int(options["chunk"])
        reuse = bool(options["reuse"]) and not options["fresh"]
        if not options["fresh"] and not reuse and Lead.objects.exists():
            raise CommandError(
                "This database has leads. Pass --fresh to delete them (only on a bench database), "
                "or --reuse to predict for them again."
            )
        now = timezone.now()
        with threadpool_limits(1):
            if options["fresh"]:
                self.stdout.write("Deleting old data…")
                with connection.cursor() as cursor:
                    cursor.execute(
                        "TRUNCATE ml_modelversion, ml_trainingrun, "
                        f"{Interaction._meta.db_table}, {Lead._meta.db_table} CASCADE"
                    )
            if reuse:
                with connection.cursor() as cursor:
                    cursor.execute("TRUNCATE ml_modelversion, ml_trainingrun CASCADE")
            started = time.perf_counter()
            if not reuse:
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
            started, train_cpu = time.perf_counter(), time.process_time()
            outcome = services.train_and_promote(now=now, rescore=False)  # the bench times prediction itself
            train_s, train_cpu = time.perf_counter() - started, time.process_time() - train_cpu
            version = ModelVersion.objects.filter(is_promoted=True).first()
            if version is None:
                raise CommandError(f"No model was promoted: {outcome.message}")

            ids = np.array(list(Lead.objects.order_by("id").values_list("id", flat=True)[:n_predict]))
            self.stdout.write(f"Predicting {len(ids):,} leads in chunks of {chunk:,}…")
            workers = max(1, int(options["workers"]))
            chunks = [ids[start : start + chunk].tolist() for start in range(0, len(ids), chunk)]
            services.load_promoted()  # unpickled once here; forked workers share it
            connections.close_all()  # each worker opens its own connection
            started = time.perf_counter()
            if workers == 1:
                done = [_predict_chunk((c, now)) for c in chunks]
            else:
                with multiprocessing.get_context("fork").Pool(workers, initializer=_worker_init) as pool:
                    done = list(pool.imap_unordered(_predict_chunk, [(c, now) for c in chunks]))
            scored = sum(n for n, _ in done)
            predict_cpu = sum(cpu for _, cpu in done)
            predict_s = time.perf_counter() - started

            # The model alone (features already built: encode, probability, reasons), one thread in
            # each of the same worker processes, to show where the time goes.
            scorer = _promoted_scorer()
            _BATCHES.clear()
            for part in chunks[: max(2 * workers, 10)]:
                _BATCHES.append(predict_batch(part, now=now, names=scorer.schema.names))
            connections.close_all()
            started = time.perf_counter()
            _model_only(0)
            model_only_rps = len(_BATCHES[0].frame) / (time.perf_counter() - started)
            started = time.perf_counter()
            with multiprocessing.get_context("fork").Pool(workers, initializer=_worker_init) as pool:
                rows = sum(pool.map(_model_only, range(len(_BATCHES)), chunksize=1))
            model_only_workers_rps = rows / (time.perf_counter() - started)
        result = {
            "train_leads": int(won + lost),
            "train_seconds": round(train_s, 1),
            "train_cpu_seconds": round(train_cpu, 1),
            "model": version.algorithm,
            "cv_roc_auc": version.metrics.get("roc_auc"),
            "time_split_roc_auc": version.metrics.get("time_split", {}).get("roc_auc"),
            "predict_leads": int(len(ids)),
            "predicted": scored,
            "predict_seconds": round(predict_s, 1),
            "predict_rows_per_s": round(len(ids) / predict_s),
            # Python-side CPU seconds of the workers (the database's own CPU is not in it): what
            # the scoring path costs per core when the machine is not shared.
            "predict_cpu_seconds": round(predict_cpu, 1),
            "predict_rows_per_cpu_s": round(len(ids) / predict_cpu) if predict_cpu else None,
            "model_only_rows_per_s": round(model_only_rps),
            "model_only_rows_per_s_all_workers": round(model_only_workers_rps),
            "chunk": chunk,
            "workers": workers,
            "threads_per_worker": 1,
            "setup_seconds": round(setup_s, 1),
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
        self.stdout.write(json.dumps(result))
