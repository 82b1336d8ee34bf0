"""Load-test the chat on a real ASGI server: N concurrent open conversations, visitor message → bot reply.

Starts uvicorn on a free loopback port (settings `bench.settings`: the same app with the
rate limits lifted), opens N conversations through the public API, keeps N visitor websockets
open at once, and has every visitor send M FAQ-style messages with think time. Reports the
server-side time of each message request (the view's Server-Timing: validation, storage,
sentiment, FAQ retrieval, bot reply, commit, broadcast), the client round trip, and whether every
bot reply also arrived over the visitor's websocket.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bench.processes import uvicorn_server
from chatbot.models import Site
from demo.site import install_demo_site

BENCH_KEY = "pk_bench_chat"
BENCH_ORIGIN = "http://bench.localhost"
QUESTIONS = [
    "When are you open?",
    "Do you deliver to my home?",
    "Can I order a birthday cake?",
    "Do you have vegan cakes?",
    "Where can I park?",
    "Do you take credit cards?",
    "Is there wifi?",
    "Can I bring my dog?",
    "do you sell bicycles",
    "I'm interested in wedding cakes",
]


class Http:
    """A tiny keep-alive HTTP/1.1 client on asyncio streams (no extra dependency)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: Any = None, token: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            return await self._request(method, path, body, token)
        except (ConnectionError, IndexError, asyncio.IncompleteReadError):
            # The server closed an idle keep-alive connection: reconnect once and resend.
            await self.close()
            self.reader = self.writer = None
            return await self._request(method, path, body, token)

    async def _request(
        self, method: str, path: str, body: Any = None, token: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = json.dumps(body).encode() if body is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nOrigin: {BENCH_ORIGIN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: keep-alive\r\n"
            + (f"X-Chat-Token: {token}\r\n" if token else "")
            + "\r\n"
        )
        self.writer.write(head.encode() + data)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if "content-length" in headers:
            payload = await self.reader.readexactly(int(headers["content-length"]))
        else:  # chunked
            chunks = []
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                if size == 0:
                    await self.reader.readline()
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readline()
            payload = b"".join(chunks)
        return status, headers, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Command(BaseCommand):
    help = (
        "Benchmark the chat on a real uvicorn server on 127.0.0.1. Last line is JSON "
        '{"conversations","messages","errors","server_p50_ms","server_p95_ms","client_p95_ms",'
        '"ws_open_peak","ws_delivered","ws_expected",...}.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--conversations", type=int, default=200)
        parser.add_argument("--messages", type=int, default=5, help="visitor messages per conversation")
        parser.add_argument(
            "--think", type=float, default=3.0, help="mean seconds between a visitor's messages"
        )
        parser.add_argument(
            "--workers", type=int, default=0, help="uvicorn workers (default: 2 with Redis, else 1)"
        )
        parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which visitors arrive")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: object, **options: Any) -> None:
        n, m = int(options["conversations"]), int(options["messages"])
        if not (1 <= n <= 2000 and 1 <= m <= 100):
            raise CommandError("Use 1–2000 conversations and 1–100 messages each.")
        call_command("migrate", verbosity=0)  # a new, empty bench database works as it is
        workers = int(options["workers"]) or (2 if settings.REDIS_URL else 1)
        if workers > 1 and not settings.REDIS_URL:
            raise CommandError(
                "More than one worker needs REDIS_URL (the in-memory channel layer is per process)."
            )
        site = install_demo_site()
        bench, _ = Site.objects.update_or_create(
            public_key=BENCH_KEY,
            defaults={
                "name": "Bench bakery",
                "allowed_origins": [BENCH_ORIGIN],
                "business_hours": {
                    d: [["00:00", "00:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                },
            },
        )
        for entry in site.faq_entries.all():
            bench.faq_entries.update_or_create(
                question=entry.question, defaults={"variants": entry.variants, "answer": entry.answer}
            )
        with uvicorn_server(
            workers=workers, extra_args=("--timeout-keep-alive", "30"), start_within=30
        ) as port:
            result = asyncio.run(
                self._run(port, n, m, float(options["think"]), int(options["seed"]), float(options["ramp"]))
            )
        result.update(
            workers=workers,
            database=settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            channel_layer="redis" if settings.REDIS_URL else "in-memory",
            cpus=os.cpu_count(),
        )
        self.stdout.write(
            f"{result['conversations']} conversations, {result['messages']} messages, {result['errors']} errors; "
            f"server-side p95 {result['server_p95_ms']} ms (p50 {result['server_p50_ms']} ms); "
            f"client round trip p95 {result['client_p95_ms']} ms; websockets open at once: {result['ws_open_peak']}; "
            f"bot replies pushed over websocket {result['ws_delivered']}/{result['ws_expected']}, "
            f"fetched after a reconnect {result['ws_recovered_after_reconnect']} "
            f"({result['ws_reconnects']} reconnects)."
        )
        self.stdout.write(json.dumps(result))

    async def _run(self, port: int, n: int, m: int, think: float, seed: int, ramp: float) -> dict[str, Any]:
        from websockets.asyncio.client import connect
        from websockets.typing import Origin

        rng = random.Random(seed)
        run = uuid.uuid4().hex[:12]  # fresh visitors each run (a known visitor id resumes its chat)
        base = f"/api/v1/chat/sites/{BENCH_KEY}/"
        server_ms: list[float] = []
        client_ms: list[float] = []
        errors: list[str] = []
        open_now = 0
        peak = 0
        delivered = 0
        recovered = 0
        drops = 0
        expected = 0
        all_open = asyncio.Event()
        opened = 0

        warm = Http("127.0.0.1", port)  # first request fits the FAQ matcher in each worker
        for i in range(4):
            status, _, body = await warm.request(
                "POST", base + "conversations/", {"visitor_id": f"bench-warm-{run}-{i}"}
            )
            token = json.loads(body)["token"]
            await warm.request(
                "POST", base + "conversation/messages/", {"text": "When are you open?"}, token=token
            )
        await warm.close()

        async def visitor(index: int) -> None:
            nonlocal delivered, expected, recovered
            http = Http("127.0.0.1", port)
            await asyncio.sleep(ramp * index / n)  # visitors arrive over the ramp, not in one instant
            try:
                status, _, body = await http.request(
                    "POST", base + "conversations/", {"visitor_id": f"bench-{run}-{index:05d}"}
                )
                if status != 200:
                    errors.append(f"start {status}")
                    return
                token = json.loads(body)["token"]
                bot_ids: set[int] = set()
                seen: set[int] = set()
                fetched: set[int] = set()
                done = asyncio.Event()
                connected = asyncio.Event()

                async def socket_loop() -> None:
                    # Like the widget: on a drop, reconnect and fetch what was missed over HTTP.
                    nonlocal open_now, peak, opened, drops
                    first = True
                    resync = Http("127.0.0.1", port)
                    try:
                        while not done.is_set():
                            try:
                                async with connect(
                                    f"ws://127.0.0.1:{port}/ws/chat/visitor/",
                                    origin=Origin(BENCH_ORIGIN),
                                ) as ws:
                                    # The token travels in the first frame, never in the URL.
                                    await ws.send(json.dumps({"type": "auth", "token": token}))
                                    while json.loads(await ws.recv()).get("type") != "ready":
                                        pass
                                    open_now += 1
                                    peak = max(peak, open_now)
                                    if first:
                                        first = False
                                        opened += 1
                                        if opened == n:
                                            all_open.set()
                                    connected.set()
                                    try:
                                        if not first:
                                            _, _, body = await resync.request(
                                                "GET", base + "conversation/messages/?after=0", token=token
                                            )
                                            fetched.update(m["id"] for m in json.loads(body)["messages"])
                                        async for raw in ws:
                                            event = json.loads(raw)
                                            if event.get("type") == "message":
                                                seen.add(event["message"]["id"])
                                    finally:
                                        open_now -= 1
                            except Exception:
                                pass
                            if not done.is_set():
                                drops += 1
                                await asyncio.sleep(0.5)
                    finally:
                        await resync.close()

                listener = asyncio.create_task(socket_loop())
                await asyncio.wait_for(connected.wait(), timeout=60)
                await asyncio.sleep(rng.uniform(0, think))
                for k in range(m):
                    text = QUESTIONS[(index + k) % len(QUESTIONS)]
                    started = time.perf_counter()
                    status, headers, body = await http.request(
                        "POST",
                        base + "conversation/messages/",
                        {"text": text, "client_id": f"{run}-{k}"},
                        token=token,
                    )
                    client_ms.append((time.perf_counter() - started) * 1000)
                    if status != 200:
                        errors.append(f"message {status}")
                        continue
                    timing = headers.get("server-timing", "")
                    if "dur=" in timing:
                        server_ms.append(float(timing.split("dur=")[1]))
                    bot_ids |= {msg["id"] for msg in json.loads(body)["messages"] if msg["from"] == "bot"}
                    await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))
                # Keep every socket open until all N are open at the same time.
                await asyncio.wait_for(all_open.wait(), timeout=180)
                deadline = time.monotonic() + 30
                while not bot_ids <= (seen | fetched) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                expected += len(bot_ids)
                delivered += len(bot_ids & seen)
                recovered += len((bot_ids - seen) & fetched)
                done.set()
                listener.cancel()
            except Exception as exc:  # counted, reported; the run goes on
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            finally:
                await http.close()

        started = time.perf_counter()
        await asyncio.gather(*(visitor(i) for i in range(n)))
        seconds = time.perf_counter() - started
        server = np.asarray(server_ms) if server_ms else np.zeros(1)
        client = np.asarray(client_ms) if client_ms else np.zeros(1)
        return {
            "conversations": n,
            "messages": len(server_ms),
            "errors": len(errors),
            "error_examples": sorted(set(errors))[:5],
            "server_p50_ms": round(float(np.percentile(server, 50)), 1),
            "server_p95_ms": round(float(np.percentile(server, 95)), 1),
            "server_max_ms": round(float(server.max()), 1),
            "client_p50_ms": round(float(np.percentile(client, 50)), 1),
            "client_p95_ms": round(float(np.percentile(client, 95)), 1),
            "ws_open_peak": peak,
            "ws_delivered": delivered,
            "ws_recovered_after_reconnect": recovered,
            "ws_reconnects": drops,
            "ws_expected": expected,
            "seconds": round(seconds, 1),
            "messages_per_second": round(len(server_ms) / seconds, 1),
        }
