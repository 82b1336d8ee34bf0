"""Load-test event ingestion on a real server: single tracking events/s and batch events/s.

Starts gunicorn (gthread workers, persistent database connections) on a free loopback port
against this process's database, then for --duration seconds each:

1. single: --clients concurrent keep-alive connections, each POSTing one snippet event per request
   to /api/v1/track/sites/<key>/events (signed visitor id, consent given, anonymous visitor:
   the common case), exactly as the snippet sends them (text/plain, Origin checked, IP and site
   limits counted in Redis when REDIS_URL is set);
2. batch: --batch-clients connections POSTing --batch-size events per request to
   /api/v1/events/batch with an API token (a manager's), spread over --leads leads.

Every event is committed before its answer (PostgreSQL's default synchronous_commit); at the end
the stored rows are counted in the database and must equal what the answers said. With REDIS_URL
a real Celery worker runs during both phases, as in production: it applies the batches' outbox
(the leads' last activity and rescore requests, `leadcrm.tasks.apply_recorded_activity`) and
rescores the touched leads, on the same two cores; `applied_after_s` is how long after the last
batch the outbox was empty and every touched lead rescored. The last line is JSON with
single_events_per_s and batch_events_per_s.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import create_token
from bench.processes import child_env
from chatbot.models import Site
from leadcrm import services as crm
from leadcrm.models import Interaction, Lead, RecordedActivity
from leadcrm.permissions import MANAGER_GROUP
from tracking import services as tracking
from tracking.models import TrackedEvent, TrackingMode
from tracking.visitors import issue_visitor_id

ROOT = Path(__file__).resolve().parents[3]
BENCH_KEY = "pk_bench_ingest"
BENCH_ORIGIN = "http://bench.localhost"
LEAD_DOMAIN = "bench-ingest.invalid"


class Http:
    """A tiny keep-alive HTTP/1.1 client on asyncio streams."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        try:
            return await self._post(path, body, content_type)
        except (ConnectionError, IndexError, asyncio.IncompleteReadError):
            self.close()  # the server closed an idle keep-alive connection: once more
            return await self._post(path, body, content_type)

    async def _post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nOrigin: {BENCH_ORIGIN}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{self.extra}\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length, chunked, close = 0, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            key, value = key.strip().lower(), value.strip()
            if key == "content-length":
                length = int(value)
            elif key == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif key == "connection" and value.lower() == "close":
                close = True
        if chunked:
            parts = []
            while size := int((await self.reader.readline()).strip(), 16):
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            await self.reader.readline()
            payload = b"".join(parts)
        else:
            payload = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(port: int, workers: int, threads: int) -> subprocess.Popen:
    env = child_env(
        DEBUG="0",
        SECRET_KEY=settings.SECRET_KEY,  # the visitor ids the bench signs must verify there
        SECURE_COOKIES="0",
        ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="WARNING",
        CONN_MAX_AGE="600",  # persistent connections: one per worker thread
        CELERY_TASK_ALWAYS_EAGER="0",  # rescores go to the broker, never inline in the web process
        TRACKING_RATE_IP_MINUTE="100000000",  # one client IP sends everything (the limits still run)
        TRACKING_RATE_SITE_MINUTE="100000000",
        EVENTS_BATCH_RATE_USER_MINUTE="1000000/min",
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the product's settings (config.settings), not tests'
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--worker-class",
            "gthread",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise CommandError(f"gunicorn exited with code {proc.returncode} before answering")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if b" 200 " in s.recv(100):
                    return proc
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    raise CommandError("gunicorn did not answer /healthz within 120 s")


def start_worker() -> subprocess.Popen:
    """One Celery worker (2 threads) on the default queue (it also runs what earlier runs queued)."""
    env = child_env(CELERY_TASK_ALWAYS_EAGER="0", SECRET_KEY=settings.SECRET_KEY, LOG_LEVEL="WARNING")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
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
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )


def wait_applied(lead_ids: list[int], timeout: float) -> float | None:
    """Seconds until the outbox is empty and no touched lead waits for its rescore (None: timeout)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        waiting = Lead.objects.filter(pk__in=lead_ids, rescore_requested_at__isnull=False).exists()
        if not waiting and not RecordedActivity.objects.exists():
            return round(time.perf_counter() - start, 2)
        time.sleep(0.1)
    return None


async def run_clients(
    n: int, port: int, headers: dict[str, str], make_request: Any, duration: float, warmup: float
) -> tuple[int, int, list[float]]:
    """n connections send make_request() back to back; returns (events stored, errors, latencies)."""
    stored, errors, latencies = 0, 0, []
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + duration

    async def client(i: int) -> None:
        nonlocal stored, errors
        # Connections arrive spread out, as browsers' do (not all in the same millisecond, which
        # lets one idle gunicorn worker accept most of them); the warm-up is not measured.
        await asyncio.sleep(min(warmup / 2, 0.05 * i))
        http = Http("127.0.0.1", port, headers)
        while (now := time.perf_counter()) < stop_at:
            path, body, content_type = make_request(i)
            status, payload = await http.post(path, body, content_type)
            took = time.perf_counter() - now
            if status != 200:
                errors += 1
                if errors <= 3:
                    sys.stderr.write(f"HTTP {status}: {payload[:300]!r}\n")
                continue
            if now >= measure_from:
                stored += int(json.loads(payload)["stored"])
                latencies.append(took * 1000)
        http.close()

    await asyncio.gather(*(client(i) for i in range(n)))
    return stored, errors, latencies


class Command(BaseCommand):
    help = (
        "Benchmark event ingestion on a real gunicorn server on 127.0.0.1 (PostgreSQL). Last line is "
        'JSON {"single_events_per_s", "batch_events_per_s", …}. Targets: ≥ 600 and ≥ 50,000.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per phase")
        parser.add_argument("--warmup", type=float, default=2.0)
        parser.add_argument("--clients", type=int, default=16, help="keep-alive connections, single events")
        parser.add_argument("--batch-clients", type=int, default=6)
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--leads", type=int, default=100, help="leads the batch events are spread over")
        parser.add_argument(
            "--workers",
            type=int,
            default=2 * (os.cpu_count() or 1) + 1,
            help="gunicorn worker processes (default: gunicorn's advice, 2 × cores + 1)",
        )
        parser.add_argument("--threads", type=int, default=2, help="threads per worker (gthread)")
        parser.add_argument("--no-migrate", action="store_true", help="the database is migrated already")
        parser.add_argument("--no-worker", action="store_true", help="run no Celery worker meanwhile")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection_vendor() != "postgresql":
            raise CommandError("bench_ingest needs PostgreSQL: set DATABASE_URL.")
        if not options["no_migrate"]:
            call_command("migrate", verbosity=0)
        site, token, lead_ids = self._set_up(options["leads"])
        port = free_port()
        worker = None if options["no_worker"] or not settings.REDIS_URL else start_worker()
        server = start_gunicorn(port, options["workers"], options["threads"])
        applied_after = None
        try:
            single = self._single(site, port, options)
            batch = self._batch(token, lead_ids, port, options)
            if worker is not None:
                applied_after = wait_applied(lead_ids, timeout=120)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
            if worker is not None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(30)
        stored_single = TrackedEvent.objects.filter(site=site).count()
        stored_batch = Interaction.objects.filter(lead_id__in=lead_ids).count()
        result = {
            **single,
            **batch,
            "durable_check": stored_single >= single["single_events"]
            and stored_batch >= batch["batch_events"],
            "server": f"gunicorn gthread {options['workers']}x{options['threads']}, CONN_MAX_AGE=600",
            "worker": worker is not None,
            "applied_after_s": applied_after,
            "redis": bool(settings.REDIS_URL),
            "cores": os.cpu_count(),
        }
        self.stdout.write(
            f"single: {single['single_events_per_s']:.0f} events/s (p50 {single['single_p50_ms']} ms, "
            f"p95 {single['single_p95_ms']} ms); batch: {batch['batch_events_per_s']:.0f} events/s "
            f"(p50 {batch['batch_p50_ms']} ms per {options['batch_size']} events)"
        )
        self.stdout.write(json.dumps(result))

    def _set_up(self, n_leads: int) -> tuple[Site, str, list[int]]:
        site, _ = Site.objects.get_or_create(public_key=BENCH_KEY, defaults={"name": "Bench ingest"})
        site.allowed_origins = [BENCH_ORIGIN]
        site.save()
        tracking.set_tracking_mode(site=site, mode=TrackingMode.ANONYMOUS_UNTIL_CONSENT)
        TrackedEvent.objects.filter(site=site).delete()
        old = Lead.objects.filter(email__endswith="@" + LEAD_DOMAIN).values_list("pk", flat=True)
        crm.delete_leads(lead_ids=list(old))
        lead_ids = [
            crm.create_lead(email=f"bench{i}@{LEAD_DOMAIN}", first_name="Bench", source="other").pk
            for i in range(n_leads)
        ]
        user, _ = User.objects.get_or_create(username="bench-ingest")
        user.groups.add(Group.objects.get_or_create(name=MANAGER_GROUP)[0])
        return site, create_token(user=user, name="bench_ingest", days=1).secret, lead_ids

    def _single(self, site: Site, port: int, options: dict[str, Any]) -> dict[str, Any]:
        path = f"/api/v1/track/sites/{site.public_key}/events"
        visitors = [issue_visitor_id(site.pk) for _ in range(options["clients"])]

        def request(i: int) -> tuple[str, bytes, str]:
            event = {
                "id": uuid.uuid4().hex,
                "type": "page_view",
                "url": "https://shop.example/pricing?utm_source=bench",
                "title": "Pricing",
                "referrer": "https://search.example/",
            }
            body = {"visitor_id": visitors[i], "consent": True, "events": [event]}
            return path, json.dumps(body).encode(), "text/plain;charset=UTF-8"

        stored, errors, lat = asyncio.run(
            run_clients(options["clients"], port, {}, request, options["duration"], options["warmup"])
        )
        return {
            "single_events": stored,
            "single_events_per_s": round(stored / options["duration"], 1),
            "single_p50_ms": round(float(np.percentile(lat, 50)), 2) if lat else None,
            "single_p95_ms": round(float(np.percentile(lat, 95)), 2) if lat else None,
            "single_errors": errors,
        }

    def _batch(self, token: str, lead_ids: list[int], port: int, options: dict[str, Any]) -> dict[str, Any]:
        size = options["batch_size"]
        kinds = ["page_view", "form_submit", "content_download", "email_reply", "purchase"]

        # The body is built once with a placeholder run id; each request only swaps in a fresh one
        # (12 hex characters), so the load generator leaves the two cores to the server.
        template = json.dumps(
            {
                "events": [
                    {
                        "event_id": f"RUNIDRUNIDRU-{j}",
                        "lead_id": lead_ids[j % len(lead_ids)],
                        "kind": kinds[j % len(kinds)],
                        "occurred_at": "2026-01-05T10:00:00Z",
                        "payload": {"url": f"https://shop.example/p{j % 50}", "title": "Bench"},
                    }
                    for j in range(size)
                ]
            }
        ).encode()

        def request(i: int) -> tuple[str, bytes, str]:
            body = template.replace(b"RUNIDRUNIDRU", uuid.uuid4().hex[:12].encode())
            return "/api/v1/events/batch", body, "application/json"

        stored, errors, lat = asyncio.run(
            run_clients(
                options["batch_clients"],
                port,
                {"Authorization": f"Bearer {token}"},
                request,
                options["duration"],
                options["warmup"],
            )
        )
        return {
            "batch_events": stored,
            "batch_events_per_s": round(stored / options["duration"], 1),
            "batch_p50_ms": round(float(np.percentile(lat, 50)), 2) if lat else None,
            "batch_errors": errors,
        }


def connection_vendor() -> str:
    from django.db import connection

    return connection.vendor
