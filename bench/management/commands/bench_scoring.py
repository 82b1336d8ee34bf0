"""Benchmark rule scoring: generate leads and interactions in SQL, then time a full recompute with 30
rules, single-lead rescoring, and (with a real Redis broker) event committed → new score readable.

Prints as its LAST line one JSON object:
{"leads", "interactions", "rules", "full_recompute_s", "single_lead_ms_p95", "event_to_score_ms_p95", …}

It writes into the configured database (use a throw-away one, e.g. DATABASE_URL=…/bench_scoring):
existing data is only replaced with --replace.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from bench.processes import child_env
from leadcrm.models import Interaction, Lead
from scoring import defaults, services
from scoring.models import Category, GradeBand, Operator, RecomputeRun, Rule, RuleChange

BENCH_MARK = "bench_scoring"  # stored in leads' utm_campaign so a rerun can reuse its own data

EXTRA_RULES = [
    {
        "name": "Pro plan interest",
        "category": Category.FIT,
        "points": 5,
        "field": "custom.plan",
        "operator": Operator.EQUALS,
        "value": "pro",
        "reason": "Asked about the Pro plan",
    },
    {
        "name": "Came from Google",
        "category": Category.FIT,
        "points": 2,
        "field": "utm_source",
        "operator": Operator.EQUALS,
        "value": "google",
        "reason": "Found us on Google",
    },
]


def p95(values: list[float]) -> float | None:
    return round(float(np.percentile(values, 95)), 2) if values else None


class Command(BaseCommand):
    help = "Generate N leads / M interactions in SQL and time full recompute, single-lead and event→score."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--leads", type=int, default=100_000)
        parser.add_argument("--interactions", type=int, default=1_000_000)
        parser.add_argument("--samples", type=int, default=200, help="Single-lead and event samples.")
        parser.add_argument("--chunk-size", type=int, default=services.CHUNK_SIZE)
        parser.add_argument(
            "--replace", action="store_true", help="Delete existing leads/rules in this database first."
        )
        parser.add_argument(
            "--no-worker", action="store_true", help="Skip event→score even when a broker is configured."
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("bench_scoring generates its data with PostgreSQL SQL; set DATABASE_URL.")
        call_command("migrate", verbosity=0)  # a new, empty bench database works as it is
        n_leads, n_events = opts["leads"], opts["interactions"]
        if n_leads < 1 or n_events < 0:
            raise CommandError("--leads must be ≥ 1 and --interactions ≥ 0.")
        self._prepare_data(n_leads, n_events, replace=opts["replace"])
        n_rules = self._install_rules()
        result: dict[str, Any] = {
            "leads": n_leads,
            "interactions": n_events,
            "rules": n_rules,
            "cpus": os.cpu_count(),
        }

        # 1) First full recompute: on fresh data every lead gets its first score (all rows written).
        t0 = time.perf_counter()
        run = services.recompute_all(chunk_size=opts["chunk_size"])
        result["first_recompute_s"] = round(time.perf_counter() - t0, 2)
        result["first_recompute_changed"] = run.changed_leads
        self.stdout.write(
            f"first full recompute: {result['first_recompute_s']} s, {run.changed_leads} changed"
        )

        # 2) Full recompute after a rule change (the case the issue times): "Referral" fires for 10% of
        # the generated leads, so 10% change and only those rows are written.
        rule = Rule.objects.get(name="Referral")
        rule.points = 12 if rule.points != 12 else 10
        rule.save(update_fields=["points"])
        t0 = time.perf_counter()
        run = services.recompute_all(chunk_size=opts["chunk_size"])
        result["full_recompute_s"] = round(time.perf_counter() - t0, 2)
        result["full_recompute_changed"] = run.changed_leads
        self.stdout.write(
            f"full recompute after a rule change: {result['full_recompute_s']} s, {run.changed_leads} changed"
        )

        # 3) Single lead, as the worker runs it.
        ids = self._sample_ids(opts["samples"])
        timings = []
        for lead_id in ids:
            t0 = time.perf_counter()
            services.rescore_leads([lead_id])
            timings.append((time.perf_counter() - t0) * 1000)
        result["single_lead_ms_p50"] = round(float(np.percentile(timings, 50)), 2)
        result["single_lead_ms_p95"] = p95(timings)
        self.stdout.write(
            f"single lead: p50 {result['single_lead_ms_p50']} ms, p95 {result['single_lead_ms_p95']} ms"
        )

        # 4) Event committed → new score readable, through Redis and a real worker.
        result["event_to_score_ms_p95"] = None
        if settings.REDIS_URL and not opts["no_worker"]:
            latencies = self._event_to_score(ids[: min(len(ids), 100)])
            result["event_to_score_ms_p50"] = (
                round(float(np.percentile(latencies, 50)), 2) if latencies else None
            )
            result["event_to_score_ms_p95"] = p95(latencies)
            self.stdout.write(
                f"event→score: p95 {result['event_to_score_ms_p95']} ms over {len(latencies)} events"
            )
        else:
            self.stdout.write("event→score skipped: no REDIS_URL (needs a real broker and worker)")
        self.stdout.write(json.dumps(result))

    # ------------------------------------------------------------------------------ data

    def _prepare_data(self, n_leads: int, n_events: int, *, replace: bool) -> None:
        leads = Lead.objects.count()
        ours = Lead.objects.filter(utm_campaign=BENCH_MARK).count()
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'leadcrm_interaction'")
            approx_events = cursor.fetchone()[0]
        if leads == ours == n_leads and abs(approx_events - n_events) <= max(0.02 * n_events, 10):
            exact = Interaction.objects.count()
            # The event→score step of an earlier run adds a few hundred interactions: still ours.
            if n_events <= exact <= n_events + 1000:
                self.stdout.write(f"reusing {n_leads} leads / {n_events} interactions already generated")
                return
        if leads and not (replace or leads == ours):
            raise CommandError(
                f"This database already has {leads} leads that bench_scoring did not create. "
                "Point DATABASE_URL at a throw-away database, or pass --replace to delete them."
            )
        t0 = time.perf_counter()
        self._generate(n_leads, n_events)
        self.stdout.write(
            f"generated {n_leads} leads / {n_events} interactions in {time.perf_counter() - t0:.1f} s"
        )

    def _generate(self, n_leads: int, n_events: int) -> None:
        now = timezone.now()
        with transaction.atomic(), connection.cursor() as c:
            c.execute(
                "TRUNCATE leadcrm_interaction, scoring_scoresnapshot, leadcrm_segmentmembership, "
                "leadcrm_followup, leadcrm_lead RESTART IDENTITY CASCADE"
            )
            c.execute("SELECT setseed(0.42)")
            # Leads: believable mix, with a few junk ones for the spam detectors.
            c.execute(
                """
                INSERT INTO leadcrm_lead (first_name, last_name, email, phone, company_name, industry,
                    employee_count, annual_revenue_band, job_title, country, city, timezone,
                    preferred_language, source, utm_source, utm_medium, utm_campaign, utm_term, utm_content,
                    status, lost_reason, marketing_consent, contact_consent, custom, visitor_id,
                    rule_score, fit_score, engagement_score, grade, score_breakdown, ml_factors, priority,
                    created_at, updated_at)
                SELECT
                    CASE WHEN i %% 50 = 0 THEN 'asdf' WHEN i %% 37 = 0 THEN 'john'
                         ELSE (ARRAY['Olivia','Liam','Emma','Noah','Ava','Lena','Jonas','Priya','Omar','Chen'])[1 + i %% 10] END,
                    (ARRAY['Smith','Garcia','Müller','Rossi','Novak','Silva','Kim','Patel','Jensen','Nguyen','Okafor'])[1 + i %% 11],
                    CASE WHEN i %% 97 = 0 THEN 'x' || i || '@mailinator.com' ELSE 'lead' || i || '@example' || (i %% 1000) || '.com' END,
                    CASE WHEN i %% 3 = 0 THEN '+49 30 ' || i ELSE '' END,
                    'Company ' || (i %% 50000),
                    (ARRAY['Software','Retail','Manufacturing','Healthcare','Finance','Education','Logistics','Marketing agency','Non-profit'])[1 + i %% 9],
                    CASE WHEN i %% 7 = 0 THEN NULL ELSE (random() * 1000)::int END,
                    '',
                    (ARRAY['Owner','CEO','Director of Sales','Head of Marketing','Sales Manager','Office Manager','Consultant','Assistant','Student','Intern','Account Executive'])[1 + i %% 11],
                    (ARRAY['US','GB','DE','FR','NL','ES','CA','AU','IN','BR'])[1 + i %% 10],
                    '', '', '',
                    (ARRAY['web_form','chat','referral','event','paid_ads','organic_search','social','email_campaign','purchased_list','other'])[1 + i %% 10],
                    CASE WHEN i %% 4 = 0 THEN 'google' ELSE '' END, '', %s, '', '',
                    'new', '', i %% 2 = 0, true,
                    CASE WHEN i %% 5 = 0 THEN '{"plan": "pro"}'::jsonb ELSE '{}'::jsonb END, '',
                    0, 0, 0, '', '[]'::jsonb, '[]'::jsonb, 0,
                    %s - (i %% 365) * interval '1 day', %s
                FROM generate_series(1, %s) AS i
                """,
                [BENCH_MARK, now, now, n_leads],
            )
            # Loading 10M rows into six indexes row by row takes far longer than building the indexes
            # afterwards; drop the secondary ones, load with FK triggers off (the ids are valid by
            # construction), then rebuild.
            c.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'leadcrm_interaction' "
                "AND indexname <> 'leadcrm_interaction_pkey'"
            )
            indexes = c.fetchall()
            for name, _ in indexes:
                c.execute(f'DROP INDEX IF EXISTS "{name}"')
            c.execute("SET LOCAL session_replication_role = replica")
            c.execute("SET LOCAL maintenance_work_mem = '1GB'")
            # Interactions: random leads and kinds, the last 180 days, page views with URLs.
            c.execute(
                """
                INSERT INTO leadcrm_interaction (lead_id, kind, channel, occurred_at, payload, created_at)
                SELECT lead_id, kind, 'web', at,
                       CASE WHEN kind = 1 THEN jsonb_build_object('url',
                                (ARRAY['/','/features','/pricing','/blog/post','/integrations','/about'])[1 + (random() * 5)::int])
                            WHEN kind IN (4, 5) THEN '{"subject": "Spring newsletter"}'::jsonb
                            ELSE '{}'::jsonb END,
                       at
                FROM (
                    SELECT 1 + floor(random() * %s)::bigint AS lead_id,
                           (ARRAY[1,1,1,1,1,1,1,1,2,3,4,4,4,5,5,6,9,13,14,15,7,8,20])[1 + floor(random() * 23)::int] AS kind,
                           %s - random() * interval '180 days' AS at
                    FROM generate_series(1, %s)
                ) AS g
                """,
                [n_leads, now, n_events],
            )
            c.execute("SET LOCAL session_replication_role = origin")
            for _, definition in indexes:
                c.execute(definition)
            c.execute(
                "UPDATE leadcrm_lead l SET last_activity_at = a.last FROM "
                "(SELECT lead_id, max(occurred_at) AS last FROM leadcrm_interaction GROUP BY lead_id) a "
                "WHERE a.lead_id = l.id"
            )
        # VACUUM cannot run in a transaction; the visibility map makes the covering index index-only.
        old_autocommit = connection.get_autocommit()
        connection.set_autocommit(True)
        try:
            with connection.cursor() as c:
                c.execute("VACUUM ANALYZE leadcrm_lead")
                c.execute("VACUUM ANALYZE leadcrm_interaction")
        finally:
            connection.set_autocommit(old_autocommit)

    def _install_rules(self) -> int:
        expected = {spec["name"] for spec in defaults.DEFAULT_RULES} | {spec["name"] for spec in EXTRA_RULES}
        if set(Rule.objects.values_list("name", flat=True)) == expected and GradeBand.objects.exists():
            # A rerun on the same data keeps its rules (and so the stored scores stay comparable).
            Rule.objects.filter(name="Referral").update(points=10)
            return Rule.objects.filter(active=True).count()
        RuleChange.objects.all().delete()
        Rule.objects.all().delete()
        GradeBand.objects.all().delete()
        RecomputeRun.objects.all().delete()
        defaults.install_default_rules()
        for spec in EXTRA_RULES:
            rule = Rule(**spec)
            rule.full_clean()
            rule.save()
        with connection.cursor() as c:
            c.execute("TRUNCATE scoring_scoresnapshot")
        # Every lead unscored, so the first recompute writes them all (a no-op right after generating).
        Lead.objects.filter(Q(scored_at__isnull=False) | Q(rescore_requested_at__isnull=False)).update(
            scored_at=None, rescore_requested_at=None
        )
        return Rule.objects.filter(active=True).count()

    def _sample_ids(self, n: int) -> list[int]:
        with connection.cursor() as c:
            c.execute("SELECT min(id), max(id) FROM leadcrm_lead")
            low, high = c.fetchone()
        rng = random.Random(7)
        return [rng.randint(low, high) for _ in range(n)]

    # ------------------------------------------------------------------------------ event → score

    def _event_to_score(self, ids: list[int]) -> list[float]:
        from config.celery import app as celery_app
        from leadcrm.services import record_interaction

        queue = f"bench-scoring-{os.getpid()}"
        env = child_env(CELERY_TASK_ALWAYS_EAGER="0")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                queue,
                "-P",
                "threads",
                "-c",
                "2",
                "-l",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env=env,
            cwd=settings.BASE_DIR,
        )
        old_queue, old_eager = celery_app.conf.task_default_queue, celery_app.conf.task_always_eager
        celery_app.conf.task_default_queue = queue
        celery_app.conf.task_always_eager = False
        latencies: list[float] = []
        try:
            Lead.objects.filter(pk__in=ids).update(rescore_requested_at=None)
            # Warm-up: the first event waits for the worker to come up.
            self._one_event(ids[0], record_interaction, timeout=60)
            for lead_id in ids[1:]:
                ms = self._one_event(lead_id, record_interaction, timeout=10)
                if ms is not None:
                    latencies.append(ms)
                time.sleep(0.02)
        finally:
            celery_app.conf.task_default_queue = old_queue
            celery_app.conf.task_always_eager = old_eager
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
        return latencies

    def _one_event(self, lead_id: int, record_interaction: Any, *, timeout: float) -> float | None:
        before = timezone.now()
        record_interaction(lead=lead_id, kind="page_view", payload={"url": "/pricing"})
        committed = time.perf_counter()  # record_interaction returns after its commit
        leads = Lead.objects.filter(pk=lead_id, scored_at__gte=before, rescore_requested_at__isnull=True)
        while time.perf_counter() - committed < timeout:
            if leads.exists():
                return (time.perf_counter() - committed) * 1000
            time.sleep(0.003)
        self.stderr.write(f"lead {lead_id}: no new score within {timeout:.0f} s")
        return None
