"""Delivery to Channels groups after commit, for every app: chat messages, staff alerts.

Broadcasts leave only after the transaction commits, so nobody is shown something that was rolled
back, and never make the request wait. Delivery is best effort: a failed send is logged once per
30 s, the data stays stored, and a client that missed an event catches up over HTTP when it
reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def send_now(groups: Iterable[str], *events: dict[str, Any]) -> None:
    """Deliver events to channel-layer groups, in order, without making the request wait.

    Under the ASGI server the request runs in a worker thread next to a running event loop:
    the sends are scheduled on that loop and the request returns at once (a reply must not
    wait for Redis round trips). Elsewhere (tests, commands, Celery) they run to completion.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    pairs = [(group, event) for event in events for group in groups]

    async def deliver() -> None:
        for group, event in pairs:
            try:
                # Bounded: a hung Redis must not hold the request (or the loop's task) for long.
                await asyncio.wait_for(layer.group_send(group, event), timeout=SEND_TIMEOUT_S)
            except Exception as exc:
                # Best-effort: the message is stored; clients resync when they (re)connect.
                _report_send_failure(group, exc)
                return  # the layer is away: the other groups would wait just as long

    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is not None and loop.is_running():
        asyncio.run_coroutine_threadsafe(deliver(), loop)
        return
    try:
        async_to_sync(deliver)()
    except RuntimeError:
        # Sync code called from a thread that owns an event loop (e.g. a Playwright test):
        # deliver from a short-lived thread with its own loop.
        worker = threading.Thread(target=asyncio.run, args=(deliver(),), daemon=True)
        worker.start()
        worker.join(timeout=5)


SEND_TIMEOUT_S = 1.0
_last_failure_logged = 0.0


def _report_send_failure(group: str, exc: BaseException) -> None:
    """One warning per 30 s while the channel layer is away, not one traceback per message."""
    global _last_failure_logged
    if time.monotonic() - _last_failure_logged > 30:
        _last_failure_logged = time.monotonic()
        logger.warning(
            "Could not deliver chat events (to %s and maybe others): %s: %s; messages are stored and "
            "clients catch up when they reconnect",
            group,
            type(exc).__name__,
            exc,
        )


def send_on_commit(groups: Sequence[str], *events: dict[str, Any]) -> None:
    """Deliver events with send_now once the transaction commits; nothing if it rolls back."""

    def send_chat_events() -> None:  # a named callable: robust on_commit logs its __qualname__
        try:
            send_now(groups, *events)
        except Exception:
            logger.warning("Could not deliver chat events to %s", groups, exc_info=True)

    transaction.on_commit(send_chat_events, robust=True)
