"""Page benchmark: the queue and the lead context under 4 concurrent clients, on 1,000,000 leads.

    make bench-pages                                            # 1M leads into bench_dash, serve, measure
    make bench-pages BENCH_ARGS=--reuse                         # keep the loaded data (fast re-runs)
    DATABASE_URL=postgres://…/bench_dash DEBUG=1 .venv/bin/python manage.py bench_pages --leads 100000

1. Loads leads, interactions, score history, segments and follow-ups into the PostgreSQL database
   of DATABASE_URL (REPLACING its CRM rows: give it a database of its own) with set-based SQL
   (INSERT … SELECT FROM generate_series): a million leads in well under a minute, no per-row Python.
2. Serves the app with gunicorn on 127.0.0.1 (DEBUG off) against that database.
3. Logs in 4 salespeople/manager through the real login form and drives the pages from 4 Python
   threads (http.client, loopback only) for --duration seconds after a warm-up.
4. Prints one JSON line last: p50/p95/p99 per page, and the two target figures
   (`queue_p95_ms` ≤ 100, `lead_context_p95_ms` ≤ 150).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from bench.processes import configured_database_url
from leadcrm.models import Interaction, Lead

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "bench-pass-123"
SALES = ("bench_sales1", "bench_sales2", "bench_sales3")
MANAGER = "bench_manager"
HOT_LEADS = 5_000  # the top of the queue gets rich histories: those are the leads people open
TARGETS = {"queue_p95_ms": 100.0, "lead_context_p95_ms": 150.0}


# --- Loading ----------------------------------------------------------------------------------


def ensure_users() -> dict[str, int]:
    from django.contrib.auth.models import Group, User

    from leadcrm.permissions import MANAGER_GROUP, SALESPERSON_GROUP

    ids: dict[str, int] = {}
    for username, group in [(MANAGER, MANAGER_GROUP)] + [(s, SALESPERSON_GROUP) for s in SALES]:
        user, _ = User.objects.get_or_create(
            username=username, defaults={"first_name": username.split("_")[1]}
        )
        user.set_password(PASSWORD)
        user.save()
        user.groups.add(Group.objects.get_or_create(name=group)[0])
        ids[username] = user.pk
    return ids


def load(n_leads: int, n_interactions: int, users: dict[str, int]) -> dict[str, float]:
    """Replace all CRM rows with generated ones; returns seconds per step."""
    from django.db import connection
    from django.db.models import UniqueConstraint

    from leadcrm.models import Interaction, Lead, Segment

    sales_ids = "ARRAY[" + ",".join(str(users[s]) for s in SALES) + "]"
    timings: dict[str, float] = {}

    def step(name: str, sql: str, params: list | None = None) -> None:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            if params:  # the modulo operator must be escaped when there are placeholders
                cursor.execute(sql.replace(" % ", " %% "), params)
            else:
                cursor.execute(sql)
        timings[name] = round(time.perf_counter() - started, 1)
        print(f"  {name}: {timings[name]} s", file=sys.stderr)

    step("truncate", "TRUNCATE leadcrm_lead, leadcrm_segment RESTART IDENTITY CASCADE")
    # Building an index once after the load is several times faster than maintaining it row by
    # row, so the secondary indexes of the big tables are dropped here and rebuilt below.
    indexed = [(model, index) for model in (Lead, Interaction) for index in model._meta.indexes]
    uniques = [c for c in Lead._meta.constraints if isinstance(c, UniqueConstraint)]
    started = time.perf_counter()
    with connection.schema_editor(atomic=False) as editor:
        for _model, index in indexed:
            editor.execute(f'DROP INDEX IF EXISTS "{index.name}"')
        for constraint in uniques:
            editor.execute(f'DROP INDEX IF EXISTS "{constraint.name}"')
    timings["drop_indexes"] = round(time.perf_counter() - started, 1)
    step(
        "leads",
        f"""
        INSERT INTO leadcrm_lead (
          first_name, last_name, email, phone, company_name, industry, employee_count, annual_revenue_band,
          job_title, country, city, timezone, preferred_language, source, utm_source, utm_medium, utm_campaign,
          utm_term, utm_content, status, status_changed_at, qualified_at, closed_at, lost_reason,
          marketing_consent, marketing_consent_at, contact_consent, contact_consent_at, custom, visitor_id,
          live_until, last_activity_at, rule_score, fit_score, engagement_score, grade, score_breakdown,
          ml_probability, ml_factors, priority, scored_at, rescore_requested_at, created_at, updated_at, owner_id)
        SELECT
          (ARRAY['Olivia','Liam','Emma','Noah','Ava','Lucas','Mia','Leon','Zoe','Omar'])[1 + g % 10],
          'Bench' || g, 'lead' || g || '@bench.example', '+1 555 ' || lpad((g % 10000)::text, 4, '0'),
          (ARRAY['Blue Fox','North Oak','Iron Peak','Green Field','Cedar Labs'])[1 + g % 5] || ' ' || (g % 50000),
          (ARRAY['Software','Retail','Finance','Healthcare','Logistics'])[1 + g % 5], 5 + g % 400, '',
          (ARRAY['CEO','Head of Marketing','Sales Manager','Assistant'])[1 + g % 4],
          (ARRAY['DE','US','GB','FR'])[1 + g % 4], (ARRAY['Berlin','Austin','London','Lyon'])[1 + g % 4],
          (ARRAY['Europe/Berlin','America/Chicago','Europe/London','Europe/Paris'])[1 + g % 4],
          (ARRAY['de','en','en','fr'])[1 + g % 4],
          (ARRAY['web_form','chat','referral','event','paid_ads','organic_search','social','email_campaign',
                 'purchased_list','other'])[1 + (g * 7) % 10],
          '', '', '', '', '',
          CASE WHEN r < 0.08 THEN 'won' WHEN r < 0.20 THEN 'lost' WHEN r < 0.35 THEN 'working'
               WHEN r < 0.42 THEN 'qualified' ELSE 'new' END,
          CASE WHEN r < 0.42 THEN created + interval '3 days' END,
          CASE WHEN r < 0.08 OR (r >= 0.35 AND r < 0.42) THEN created + interval '5 days' END,
          CASE WHEN r < 0.20 THEN created + (r * 400) * interval '1 day' END,
          CASE WHEN r >= 0.08 AND r < 0.20 THEN 'No budget this year' ELSE '' END,
          g % 3 = 0, NULL, true, created, '{{}}'::jsonb, '',
          CASE WHEN g % 2000 = 0 THEN now() + interval '90 seconds' END,
          now() - s2 * interval '30 days',
          round((s * 100)::numeric, 1), round((s * 60)::numeric, 1), round((s * 40)::numeric, 1),
          (ARRAY['D','C','B','A'])[1 + floor(s * 3.999)::int] || (1 + floor(s2 * 3.999)::int)::text,
          jsonb_build_array(
            jsonb_build_object('rule', 'title', 'points', 15, 'reason', 'Decision maker (owner or C-level)'),
            jsonb_build_object('rule', 'pricing', 'points', round((s * 20)::numeric, 1),
                               'reason', 'Visited the pricing page in the last 30 days'),
            jsonb_build_object('rule', 'free_mail', 'points', -5, 'reason', 'Free email address')),
          CASE WHEN g % 10 <> 0 THEN round(s::numeric, 3) END,
          jsonb_build_array(
            jsonb_build_object('feature', 'source', 'label', 'Came from a referral', 'effect', 0.21),
            jsonb_build_object('feature', 'pages', 'label', 'Few page views', 'effect', -0.12)),
          round((s * 100)::numeric, 2), now(), NULL, created, created,
          CASE WHEN g % 5 < 2 THEN NULL ELSE ({sales_ids})[1 + g % 3] END
        FROM (SELECT g, random() AS r, random() AS s, random() AS s2,
                     now() - random() * interval '365 days' AS created
              FROM generate_series(1, %s) AS g) AS x
        """,
        [n_leads],
    )
    step(
        "interactions",
        """
        INSERT INTO leadcrm_interaction (lead_id, kind, channel, occurred_at, payload, sentiment, created_at)
        SELECT 1 + floor(random() * %s)::bigint, k.kind, k.channel, t, k.payload,
               CASE WHEN k.kind = 13 THEN round((random() * 2 - 1)::numeric, 2) END, t
        FROM (SELECT g, now() - random() * interval '60 days' AS t FROM generate_series(1, %s) AS g) AS x
        JOIN (VALUES
          (0, 1, 'web', '{"url": "/pricing", "duration_s": 40}'::jsonb),
          (1, 1, 'web', '{"url": "/features", "duration_s": 12}'::jsonb),
          (2, 4, 'email', '{"subject": "Spring product update"}'::jsonb),
          (3, 3, 'web', '{"title": "Retail case study"}'::jsonb),
          (4, 13, 'chat', '{"text": "Do you have an annual plan? The pricing looks good.", "from": "visitor"}'::jsonb)
        ) AS k(slot, kind, channel, payload) ON k.slot = x.g % 5
        """,
        [n_leads, n_interactions],
    )
    step(
        "hot_interactions",
        """
        INSERT INTO leadcrm_interaction (lead_id, kind, channel, occurred_at, payload, sentiment, created_at)
        SELECT l.id, k.kind, k.channel, t, k.payload,
               CASE WHEN k.kind = 13 THEN round((random() * 2 - 1)::numeric, 2) END, t
        FROM (SELECT id FROM leadcrm_lead ORDER BY priority DESC, id LIMIT %s) AS l
        CROSS JOIN LATERAL (SELECT g, now() - random() * interval '30 days' AS t
                            FROM generate_series(1, 30) AS g) AS x
        JOIN (VALUES
          (0, 1, 'web', '{"url": "/pricing", "duration_s": 40}'::jsonb),
          (1, 1, 'web', '{"url": "/case-studies/retail", "duration_s": 90}'::jsonb),
          (2, 5, 'email', '{"subject": "Webinar: scoring leads that buy"}'::jsonb),
          (3, 13, 'chat', '{"text": "Can we get a demo next week?", "from": "visitor"}'::jsonb),
          (4, 13, 'chat', '{"text": "How many users are included?", "from": "visitor"}'::jsonb),
          (5, 14, 'phone', '{"text": "Discovery call", "duration_s": 600}'::jsonb)
        ) AS k(slot, kind, channel, payload) ON k.slot = x.g % 6
        """,
        [HOT_LEADS],
    )
    step(
        "score_history",
        """
        INSERT INTO scoring_scoresnapshot (lead_id, taken_at, rule_score, fit_score, engagement_score, grade,
                                           ml_probability, priority)
        SELECT l.id, now() - g * interval '1 day', greatest(0, l.rule_score - g), l.fit_score,
               greatest(0, l.engagement_score - g), l.grade, l.ml_probability, greatest(0, l.priority - g)
        FROM (SELECT * FROM leadcrm_lead ORDER BY priority DESC, id LIMIT %s) AS l
        CROSS JOIN generate_series(1, 20) AS g
        """,
        [HOT_LEADS],
    )
    segments = [
        Segment.objects.create(name=name, kind="static")
        for name in ("Retail prospects", "Webinar attendees", "Enterprise", "Newsletter", "Trade fair 2026")
    ]
    seg_ids = "ARRAY[" + ",".join(str(s.pk) for s in segments) + "]"
    step(
        "segments",
        f"INSERT INTO leadcrm_segmentmembership (segment_id, lead_id, added_at) "
        f"SELECT ({seg_ids})[1 + id % 5], id, now() FROM leadcrm_lead WHERE id % 10 = 0",
    )
    step(
        "follow_ups",
        f"""
        INSERT INTO leadcrm_followup (lead_id, assigned_to_id, due_at, note, created_at)
        SELECT id, owner_id, now() + (random() * 14 - 2) * interval '1 day', 'Call back about pricing', now()
        FROM leadcrm_lead WHERE owner_id = ANY({sales_ids}) AND id % 500 = 0
        """,
    )
    started = time.perf_counter()
    with connection.schema_editor(atomic=False) as editor:
        for model, index in indexed:
            editor.add_index(model, index)
        for constraint in uniques:
            editor.add_constraint(Lead, constraint)
    timings["rebuild_indexes"] = round(time.perf_counter() - started, 1)
    print(f"  rebuild_indexes: {timings['rebuild_indexes']} s", file=sys.stderr)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    timings["analyze"] = round(time.perf_counter() - started, 1)
    return timings


# --- Serving and measuring --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(database_url: str, port: int, workers: int) -> subprocess.Popen:
    env = {
        **os.environ,  # the same settings module as this process (under pytest: the tests')
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-only-secret",
        "DEBUG": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "CONN_MAX_AGE": "600",
    }
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    deadline = time.time() + 120  # workers import Django; slow when the machine is busy
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"gunicorn exited with code {proc.returncode} before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except (OSError, http.client.HTTPException):
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    sys.exit("gunicorn did not answer /healthz within 120 s")


class Client:
    """One keep-alive HTTP connection with a logged-in session (cookies handled by hand)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: str | None = None, headers: dict | None = None
    ) -> tuple[int, str]:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key.strip()] = rest.split(";", 1)[0]
        return response.status, text

    def login(self, username: str) -> None:
        _, html = self.request("GET", "/login/")
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        if match is None:
            sys.exit("no CSRF token on /login/")
        token = match.group(1)
        body = urlencode({"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token})
        status, _ = self.request("POST", "/login/", body, {"Referer": f"http://127.0.0.1:{self.port}/login/"})
        if status != 302 or "sessionid" not in self.cookies:
            sys.exit(f"login as {username} failed ({status})")


def drive(
    port: int,
    username: str,
    duration: float,
    warmup: float,
    results: dict[str, list[float]],
    errors: list[str],
) -> None:
    client = Client(port)
    try:
        client.login(username)
    except SystemExit as exc:  # a thread's sys.exit would vanish silently
        errors.append(f"{username}: {exc}")
        return
    status, html = client.request("GET", "/crm/")
    lead_ids = [int(i) for i in re.findall(r'data-lead-id="(\d+)"', html)]
    status2, html2 = client.request("GET", "/crm/?page=2")
    lead_ids += [int(i) for i in re.findall(r'data-lead-id="(\d+)"', html2)]
    if status != 200 or not lead_ids:
        errors.append(f"{username}: queue answered {status} with {len(lead_ids)} rows")
        return
    rng = random.Random(username)
    hx = {"HX-Request": "true"}
    pages = [
        ("queue", lambda: "/crm/", {}),
        ("lead_context", lambda: f"/crm/leads/{rng.choice(lead_ids)}/", hx),
        ("queue_poll", lambda: "/crm/", hx),
        (
            "queue_filtered",
            lambda: (
                "/crm/?"
                + rng.choice(
                    ["grade=A1", "mine=on", "source=referral", "unassigned=on", "live=on", "status=qualified"]
                )
            ),
            hx,
        ),
        ("lead_page", lambda: f"/crm/leads/{rng.choice(lead_ids)}/", {}),
    ]
    weights = [4, 4, 1, 1, 1]
    started = time.perf_counter()
    while (now := time.perf_counter()) - started < warmup + duration:
        name, path, headers = rng.choices(pages, weights)[0]
        t0 = time.perf_counter()
        status, _ = client.request("GET", path(), headers=headers)
        elapsed = (time.perf_counter() - t0) * 1000
        if status != 200:
            errors.append(f"{name} answered {status}")
        if now - started >= warmup:
            results.setdefault(name, []).append(elapsed)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def server_pids(master: int, database_url: str) -> list[int]:
    """The gunicorn workers and the PostgreSQL backends serving them."""
    import psycopg

    workers = [
        int(p)
        for p in subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    ]
    with psycopg.connect(database_url, autocommit=True) as conn:
        backends = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
    return workers + backends


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 1)


class Command(BaseCommand):
    help = __doc__.split("\n\n")[0]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--leads", type=int, default=1_000_000)
        parser.add_argument("--interactions", type=int, default=3_000_000, help="spread over all leads")
        parser.add_argument(
            "--reuse", action="store_true", help="keep data if the lead count already matches"
        )
        parser.add_argument("--clients", type=int, default=4)
        parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
        parser.add_argument("--duration", type=float, default=30.0, help="seconds of measurement")
        parser.add_argument("--warmup", type=float, default=5.0)
        parser.add_argument("--port", type=int, default=0, help="0 = a free port")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                "bench_pages loads PostgreSQL with set-based SQL: set DATABASE_URL to a PostgreSQL "
                "database of its own (make bench-pages does)."
            )
        summary = run(SimpleNamespace(**options))
        self.stdout.write(json.dumps(summary))
        if summary["error_count"]:
            raise CommandError(f"{summary['error_count']} requests failed: {summary['errors'][:3]}")


def run(args: SimpleNamespace) -> dict[str, Any]:
    url = configured_database_url()
    print(f"Migrating {connection.settings_dict['NAME']}…", file=sys.stderr)
    call_command("migrate", verbosity=0)
    users = ensure_users()
    load_timings: dict[str, float] = {}
    if not (args.reuse and Lead.objects.count() == args.leads):
        print(f"Loading {args.leads:,} leads…", file=sys.stderr)
        load_timings = load(args.leads, args.interactions, users)
    n_leads = Lead.objects.count()
    n_interactions = Interaction.objects.count()
    connection.close()

    load_before = os.getloadavg()[0]  # the machine is shared: record how busy it was
    port = args.port or free_port()
    server = start_gunicorn(url, port, args.workers)
    results: dict[str, list[float]] = {}
    errors: list[str] = []
    try:
        people = [*SALES, MANAGER]
        threads = [
            threading.Thread(
                target=drive,
                args=(port, people[i % len(people)], args.duration, args.warmup, results, errors),
            )
            for i in range(args.clients)
        ]
        print(
            f"Driving {args.clients} clients for {args.duration:.0f} s (+{args.warmup:.0f} s warm-up)…",
            file=sys.stderr,
        )
        for t in threads:
            t.start()
        # CPU actually spent serving (app workers + database backends) during the measured window:
        # on a shared machine this, unlike latency, does not depend on what else is running.
        time.sleep(args.warmup + 3)  # logins and warm-up
        pids = server_pids(server.pid, url)
        cpu_start, window_start = cpu_seconds(pids), time.perf_counter()
        time.sleep(max(0.0, args.duration - 4))
        cpu_used, window = cpu_seconds(pids) - cpu_start, time.perf_counter() - window_start
        for t in threads:
            t.join()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)

    pages = {
        name: {
            "requests": len(times),
            "p50_ms": percentile(times, 0.50),
            "p95_ms": percentile(times, 0.95),
            "p99_ms": percentile(times, 0.99),
            "mean_ms": round(statistics.fmean(times), 1),
        }
        for name, times in sorted(results.items())
    }
    total_requests = sum(len(t) for t in results.values())
    rate = total_requests / args.duration if args.duration else 0.0
    cpu_per_request_ms = 1000 * cpu_used / (rate * window) if rate and window else None
    summary = {
        "leads": n_leads,
        "interactions": n_interactions,
        "clients": args.clients,
        "gunicorn_workers": args.workers,
        "duration_s": args.duration,
        "load_seconds": load_timings,
        "machine_loadavg_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "pages": pages,
        "throughput_rps": round(rate, 1),
        "server_cpu_ms_per_request": round(cpu_per_request_ms, 1) if cpu_per_request_ms else None,
        "cores": os.cpu_count(),
        "queue_p95_ms": pages.get("queue", {}).get("p95_ms"),
        "lead_context_p95_ms": pages.get("lead_context", {}).get("p95_ms"),
        "targets": TARGETS,
        "errors": errors[:10],
        "error_count": len(errors),
    }
    summary["meets_targets"] = bool(
        not errors
        and summary["queue_p95_ms"] is not None
        and summary["lead_context_p95_ms"] is not None
        and summary["queue_p95_ms"] <= TARGETS["queue_p95_ms"]
        and summary["lead_context_p95_ms"] <= TARGETS["lead_context_p95_ms"]
    )
    return summary
