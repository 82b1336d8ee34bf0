"""Benchmark staff alerts on a real ASGI server: visitor asks for a person → alert on staff pages.

Starts uvicorn on a free loopback port (settings `bench.settings`, like bench_chat), signs in N
salespeople (session cookies, as their browsers would hold), opens each one's staff socket
(`ws/staff/`, the one every staff page holds), then has M visitors ask for a person over the
public chat API, one after another. For every hand-off it measures the time from the start of the
visitor's hand-off request to the "chat.waiting" alert frame arriving on each staff socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

import numpy as np
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import Client

from bench.management.commands.bench_chat import BENCH_KEY, BENCH_ORIGIN, Http
from bench.processes import uvicorn_server
from chatbot.models import Conversation, Site
from leadcrm.permissions import SALESPERSON_GROUP

ALWAYS_OPEN = {d: [["00:00", "00:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def _conversation_ids(tokens: list[str]) -> dict[str, int]:
    return dict(Conversation.objects.filter(token__in=tokens).values_list("token", "pk"))


def _session_cookies(n: int) -> list[str]:
    """N salespeople signed in: the value of each one's session cookie."""
    group, _ = Group.objects.get_or_create(name=SALESPERSON_GROUP)
    cookies = []
    for i in range(n):
        user, _ = User.objects.get_or_create(
            username=f"bench-alerts-{i:03d}", defaults={"first_name": f"Bench{i}"}
        )
        user.groups.add(group)
        client = Client()
        client.force_login(user)
        cookies.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
    return cookies


class Command(BaseCommand):
    help = (
        "Benchmark staff alerts on a real uvicorn server on 127.0.0.1: visitor hand-off request start "
        '→ alert frame on N staff sockets. Last line is JSON {"alert_p50_ms","alert_p95_ms","alerts",...}.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--staff", type=int, default=10, help="staff sockets (one signed-in page each)")
        parser.add_argument("--handoffs", type=int, default=30, help="visitors asking for a person")
        parser.add_argument("--gap", type=float, default=0.3, help="seconds between two hand-offs")
        parser.add_argument("--workers", type=int, default=0, help="uvicorn workers (default: 2 with Redis)")

    def handle(self, *args: object, **options: Any) -> None:
        n, m = int(options["staff"]), int(options["handoffs"])
        if not (1 <= n <= 500 and 1 <= m <= 1000):
            raise CommandError("Use 1–500 staff sockets and 1–1000 hand-offs.")
        workers = int(options["workers"]) or (2 if settings.REDIS_URL else 1)
        if workers > 1 and not settings.REDIS_URL:
            raise CommandError("More than one worker needs REDIS_URL (the in-memory layer is per process).")
        call_command("migrate", verbosity=0)
        Site.objects.update_or_create(
            public_key=BENCH_KEY,
            defaults={
                "name": "Bench bakery",
                "allowed_origins": [BENCH_ORIGIN],
                "business_hours": ALWAYS_OPEN,
            },
        )
        cookies = _session_cookies(n)
        with uvicorn_server(workers=workers) as port:
            result = asyncio.run(self._run(port, cookies, m, float(options["gap"])))
        result.update(
            workers=workers,
            channel_layer="redis" if settings.REDIS_URL else "in-memory",
            cpus=os.cpu_count(),
            load_average=[round(x, 2) for x in os.getloadavg()],
        )
        self.stdout.write(
            f"{result['handoffs']} hand-offs × {result['staff']} staff sockets: {result['alerts']} alerts "
            f"of {result['alerts_expected']}; hand-off request start → alert p50 {result['alert_p50_ms']} ms, "
            f"p95 {result['alert_p95_ms']} ms, max {result['alert_max_ms']} ms; errors {result['errors']}."
        )
        self.stdout.write(json.dumps(result))

    async def _run(self, port: int, cookies: list[str], m: int, gap: float) -> dict[str, Any]:
        from websockets.asyncio.client import connect
        from websockets.typing import Origin

        run = uuid.uuid4().hex[:12]
        base = f"/api/v1/chat/sites/{BENCH_KEY}/"
        started_at: dict[str, float] = {}  # conversation token → hand-off request start
        request_ms: list[float] = []  # the hand-off request's own round trip, for comparison
        received: list[tuple[int, float]] = []  # (conversation id, when its alert arrived), every socket
        errors: list[str] = []
        ready = 0
        all_ready = asyncio.Event()
        stop = asyncio.Event()

        async def staff_page(cookie: str) -> None:
            nonlocal ready
            headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"}
            async with connect(
                f"ws://127.0.0.1:{port}/ws/staff/",
                origin=Origin(f"http://127.0.0.1:{port}"),
                additional_headers=headers,
            ) as ws:
                ready += 1
                if ready == len(cookies):
                    all_ready.set()
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                    except TimeoutError:
                        continue
                    at = time.perf_counter()
                    event = json.loads(raw)
                    if event.get("type") == "alert" and event.get("kind") == "chat.waiting":
                        received.append((event["conversation"], at))

        pages = [asyncio.create_task(staff_page(c)) for c in cookies]
        try:
            await asyncio.wait_for(all_ready.wait(), timeout=60)
        except TimeoutError as exc:
            for task in pages:
                if task.done() and task.exception():
                    raise CommandError(f"A staff socket failed: {task.exception()!r}") from exc
            raise CommandError("The staff sockets did not all open within 60 s.") from exc
        http = Http("127.0.0.1", port)
        try:
            for i in range(m):
                status, _, body = await http.request(
                    "POST", base + "conversations/", {"visitor_id": f"bench-alert-{run}-{i:05d}"}
                )
                if status != 200:
                    errors.append(f"start {status}")
                    continue
                token = json.loads(body)["token"]
                t0 = time.perf_counter()
                status, _, body = await http.request("POST", base + "conversation/handoff/", {}, token=token)
                if status != 200:
                    errors.append(f"handoff {status}")
                    continue
                started_at[token] = t0
                request_ms.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(gap)
            await asyncio.sleep(2)  # the last alerts in flight
        finally:
            stop.set()
            await http.close()
            await asyncio.gather(*pages, return_exceptions=True)
        # The API gives the visitor a token, not the id the alert names: map them after the run.
        ids = await sync_to_async(_conversation_ids)(list(started_at))
        start_by_id = {ids[token]: t0 for token, t0 in started_at.items() if token in ids}
        arrivals = [(c, at) for c, at in received if c in start_by_id]
        ms = np.asarray([(at - start_by_id[c]) * 1000 for c, at in arrivals]) if arrivals else np.zeros(1)
        return {
            "staff": len(cookies),
            "handoffs": len(started_at),
            "alerts": len(arrivals),
            "alerts_expected": len(started_at) * len(cookies),
            "errors": len(errors),
            "error_examples": sorted(set(errors))[:5],
            "alert_p50_ms": round(float(np.percentile(ms, 50)), 1),
            "alert_p95_ms": round(float(np.percentile(ms, 95)), 1),
            "alert_max_ms": round(float(ms.max()), 1),
            "handoff_request_p50_ms": round(float(np.percentile(request_ms or [0], 50)), 1),
        }
