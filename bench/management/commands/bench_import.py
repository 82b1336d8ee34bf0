"""Benchmark the import path end to end: a generated CSV of N realistic rows → parse → mapping
suggestions → `leadcrm.services.import_leads` (checks, set-based writes, consent rows, outcomes)
→ rescoring of every imported lead → audit row, as `manage.py import_leads` and the pages run it.

Prints as its LAST line one JSON object: {"rows", "seconds", "parse_s", "import_s", "created", …}.
`seconds` runs from the bytes of the file to the committed import (leads, consents, outcomes,
audit row); `then_scored_s` is the full recompute a file this big queues, run next by a worker.

It writes into the configured database and EMPTIES ITS LEADS FIRST (use a throw-away database,
e.g. DATABASE_URL=…/bench_import).
"""

from __future__ import annotations

import csv
import json
import os
import random
import tempfile
import time
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection

from config.celery import app as celery_app
from dataio import columns, services
from dataio.parsing import read_table
from leadcrm.models import Lead
from scoring import defaults
from scoring.models import RecomputeRun
from scoring.services import recompute_all

DOMAIN = "bench-import.example"
FIRST = [
    "Anna",
    "Ben",
    "Chloe",
    "David",
    "Eva",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemal",
    "Lea",
    "Mia",
    "Noah",
]
LAST = [
    "Müller",
    "Schmidt",
    "García",
    "Rossi",
    "Dubois",
    "Nowak",
    "Smith",
    "Jensen",
    "Kowalski",
    "O'Brien",
    "Yılmaz",
]
INDUSTRIES = [
    "Retail",
    "Software",
    "Bakery",
    "Logistics",
    "Healthcare",
    "Education",
    "Finance",
    "Manufacturing",
]
PLACES = [
    ("DE", "Berlin", "Europe/Berlin"),
    ("FR", "Lyon", "Europe/Paris"),
    ("US", "Austin", "America/Chicago"),
    ("GB", "Leeds", "Europe/London"),
    ("ES", "Valencia", "Europe/Madrid"),
]
SOURCES = ["Web form", "Referral", "Event", "Paid ads", "Organic search", "Import"]
TITLES = ["Owner", "CEO", "Head of Sales", "Marketing Manager", "Office Manager", "CTO", "Buyer"]


def write_csv(path: str, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(
            [
                "First name",
                "Last name",
                "Email",
                "Phone",
                "Company",
                "Industry",
                "Employees",
                "Job title",
                "Country",
                "City",
                "Time zone",
                "Newsletter",
                "Lead source",
                "Outcome",
                "Closed",
                "Lost reason",
                "Plan",
                "Signup date",
            ]
        )
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            country, city, tz = rng.choice(PLACES)
            outcome = rng.choices(["", "won", "lost"], weights=[80, 8, 12])[0]
            closed = f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}" if outcome else ""
            out.writerow(
                [
                    first,
                    last,
                    f"{first.lower()}.{i}@{DOMAIN}",
                    f"+49 30 {rng.randint(1000000, 9999999)}",
                    f"{rng.choice(LAST)} {rng.choice(['GmbH', 'Ltd', 'SARL', 'Inc'])}",
                    rng.choice(INDUSTRIES),
                    rng.randint(1, 2000),
                    rng.choice(TITLES),
                    country,
                    city,
                    tz,
                    rng.choice(["yes", "no"]),
                    rng.choice(SOURCES),
                    outcome,
                    closed,
                    "Price" if outcome == "lost" else "",
                    rng.choice(["Starter", "Team", "Enterprise"]),
                    f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                ]
            )


class Command(BaseCommand):
    help = "Time importing N generated rows end to end (parse, map, check, write, rescore)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument("--no-migrate", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_migrate"]:
            call_command("migrate", verbosity=0)  # a new, empty bench database works as it is
        defaults.install_default_rules()
        with connection.cursor() as cursor:  # a throw-away database: start from no leads at all
            cursor.execute(f"TRUNCATE {connection.ops.quote_name(Lead._meta.db_table)} CASCADE")
        celery_app.conf.task_always_eager = False  # the recompute the import queues is timed below
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "bench_leads.csv")
            write_csv(path, options["rows"])
            size = os.path.getsize(path)
            started = time.perf_counter()
            with open(path, "rb") as handle:
                table = read_table(handle.read(), "bench_leads.csv")
            mapping = columns.suggest(table.headers)
            parsed = time.perf_counter()
            result = services.import_table(table, mapping, on_duplicate="update", label="bench_import")
            finished = time.perf_counter()
        # What the worker does next: score the imported leads (a full recompute for a big file).
        run = RecomputeRun.objects.filter(status=RecomputeRun.Status.QUEUED).order_by("-id").first()
        scored_started = time.perf_counter()
        if run is not None:
            recompute_all(run=run)
        scored = time.perf_counter() - scored_started
        report = {
            "rows": len(table.rows),
            "seconds": round(finished - started, 2),
            "parse_s": round(parsed - started, 2),
            "import_s": round(finished - parsed, 2),
            "then_scored_s": round(scored, 2),
            "created": result.count("create"),
            "refused": len(result.refused),
            "outcomes": result.outcomes,
            "consents": result.consents,
            "file_mb": round(size / 1024 / 1024, 1),
            "database": connection.vendor,
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        self.stdout.write(json.dumps(report))
