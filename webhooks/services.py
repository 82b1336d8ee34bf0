"""Outgoing webhooks: register URLs, store events as deliveries, deliver them signed, retry, replay.

The promises:
- **Nothing is lost.** `emit` writes one Delivery row per subscribed webhook inside the caller's
  transaction (the change and its event commit together), and only then, after commit, nudges the
  delivery task. A broker that is down loses the nudge, not the event: the sweep (beat,
  `webhooks-sweep`) re-queues every due delivery from the database.
- **Nobody waits for a receiver.** Deliveries run in a Celery worker; in the embedded shape (eager
  Celery: the demo, unit tests) they run on a background thread after commit, never in the request.
- **No SSRF.** URLs are checked at registration and at every attempt, and the connection goes to
  the address that was checked (webhooks.guard, webhooks.client).
- **At most one attempt at a time.** An attempt claims its row by moving `next_attempt_at` forward
  in one conditional UPDATE; a duplicate nudge finds nothing due and returns.
- **A backlog drains as fast as the workers deliver.** The fan-out (`sweep`) leases the due rows
  it queues (`next_attempt_at` moved to a lease time, in one UPDATE per batch) and keeps going,
  batch after batch, until nothing is due (up to FANOUT_MAX rows per run, then it queues itself
  again behind what it sent). A task claims its row only while the row still carries the task's
  lease: a duplicate task finds another value and returns; a lost task's lease runs out and the
  row is due again for the next sweep.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.urls import reverse
from django.utils import timezone

from config.on_commit import enqueue_now, enqueue_on_commit, task_named
from leadcrm.models import FollowUp, Lead, LeadStatus
from webhooks import client, guard
from webhooks.models import TEST_EVENT, Delivery, DeliveryStatus, Event, Watermark, Webhook, new_secret
from webhooks.signing import SIGNATURE_HEADER, sign

logger = logging.getLogger(__name__)

CLAIM_SECONDS = 120  # an attempt holds its row this long (well over the 10 s total timeout)
SWEEP_BATCH = 2000  # rows leased per batch of the fan-out (its read: ~0.1 s with 100,000 due)
PER_WEBHOOK_BATCH = 500  # at most this many of one webhook's rows per batch: no webhook takes a whole batch
FANOUT_MAX = 20_000  # rows one fan-out run queues; then it queues itself again, behind them
# A queued task holds its row this long: longer than FANOUT_MAX tasks wait in the queue (a run's
# continuation runs after them), short enough that a lost task's row is sent again soon.
QUEUE_LEASE_SECONDS = 900
COPY_FROM = 200  # deliveries in one emit from which PostgreSQL gets them by COPY
OVERDUE_MARK = "follow_up_overdue"
ERROR_MAX = 300


# --- Registration ---------------------------------------------------------------------------------


def _clean(*, name: str, url: str, events: Iterable[str]) -> tuple[str, str, list[str]]:
    errors: dict[str, str] = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = "Give the webhook a name, e.g. the system it feeds."
    url = (url or "").strip()
    try:
        guard.check_url(url)
    except guard.UnsafeUrl as exc:
        errors["url"] = str(exc)
    chosen = sorted({str(e) for e in events})
    unknown = [e for e in chosen if e not in Event.values]
    if unknown:
        errors["events"] = f"Unknown event {unknown[0]!r}. Use: {', '.join(Event.values)}."
    elif not chosen:
        errors["events"] = "Choose at least one event."
    if errors:
        raise ValidationError(errors)
    return name, url, chosen


def create_webhook(
    *, name: str, url: str, events: Iterable[str], by: User | None, active: bool = True
) -> Webhook:
    """Register a URL (checked by the SSRF guard now and at every delivery) with a new secret."""
    name, url, chosen = _clean(name=name, url=url, events=events)
    return Webhook.objects.create(name=name, url=url, events=chosen, active=active, created_by=by)


def update_webhook(
    *, webhook: Webhook, name: str, url: str, events: Iterable[str], active: bool, rotate_secret: bool = False
) -> Webhook:
    """Change a webhook (the URL is checked again); optionally issue a new secret."""
    webhook.name, webhook.url, webhook.events = _clean(name=name, url=url, events=events)
    webhook.active = active
    if rotate_secret:
        webhook.secret = new_secret()
    webhook.save()
    return webhook


# --- Events ---------------------------------------------------------------------------------------


def lead_url(lead_id: int) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("leadcrm:lead", args=[lead_id])


def lead_urls() -> Callable[[int], str]:
    """lead_url for many leads (an import's thousands): one reverse(), the slow part, then each id
    put in its place."""
    marker = 918273645
    head, _, tail = lead_url(marker).rpartition(str(marker))
    return lambda lead_id: f"{head}{lead_id}{tail}"


def lead_summary(lead: Lead, *, url_of: Callable[[int], str] = lead_url) -> dict[str, Any]:
    """What an event says about a lead: ids and pipeline facts, no contact details (fetch those
    through the API with a token if the receiving system needs them)."""
    return {
        "id": lead.pk,
        "status": lead.status,
        "grade": lead.grade,
        "source": lead.source,
        "owner_id": lead.owner_id,
        "url": url_of(lead.pk),
    }


def subscribers(event: str) -> list[int]:
    """Active webhooks subscribed to `event` (one query on a table of a handful of rows)."""
    return subscriptions().get(event, [])


def subscriptions() -> dict[str, list[int]]:
    """Event name → the active webhooks subscribed to it, every event in one query."""
    hooks: dict[str, list[int]] = {}
    for pk, events in Webhook.objects.filter(active=True).values_list("pk", "events"):
        for event in events:
            hooks.setdefault(str(event), []).append(pk)
    return hooks


def emit(
    event: str,
    items: Sequence[Mapping[str, Any]],
    *,
    dedupe_keys: Sequence[str] | None = None,
    webhook_ids: Sequence[int] | None = None,
    now: datetime | None = None,
) -> int:
    """Store one delivery per (subscribed webhook, item) in the caller's transaction; queue after
    commit. Set-based: one read of the subscriptions, one bulk INSERT. Returns rows written."""
    if not items:
        return 0
    hooks = list(webhook_ids) if webhook_ids is not None else subscribers(event)
    if not hooks:
        return 0
    now = now or timezone.now()
    keys = list(dedupe_keys) if dedupe_keys is not None else [""] * len(items)
    rows = [
        Delivery(
            webhook_id=hook,
            event=event,
            dedupe_key=key,
            payload={"event": event, "occurred_at": now.isoformat(), "data": dict(item)},
            created_at=now,
            next_attempt_at=now,
        )
        for hook in hooks
        for key, item in zip(keys, items, strict=True)
    ]
    _insert(rows, ignore_conflicts=dedupe_keys is not None)
    queue_due()
    return len(rows)


def _insert(rows: Sequence[Delivery], *, ignore_conflicts: bool) -> None:
    """bulk_create; on PostgreSQL, COPY from COPY_FROM rows on (an import's thousands of
    deliveries: several times faster than INSERT's parameters). COPY knows no ON CONFLICT, so
    deliveries with dedupe keys always take the INSERT."""
    if ignore_conflicts or len(rows) < COPY_FROM or connection.vendor != "postgresql":
        Delivery.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=ignore_conflicts)
        return
    fields = [f for f in Delivery._meta.concrete_fields if not f.primary_key]
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(Delivery._meta.db_table)
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [json.dumps(row.payload) if f.name == "payload" else getattr(row, f.attname) for f in fields]
            )


def queue_due() -> None:
    """After commit, deliver what is due: a task on a worker, or a background thread when Celery
    runs eagerly (the demo, unit tests), so the request that emitted the event never waits.

    One nudge per transaction, however many events it emitted (an import emits per chunk of rows):
    the nudge's task fans out every due delivery (`sweep`), a background thread delivers them all.
    """
    conn = transaction.get_connection()
    # A nudge still registered goes whenever this transaction's events do: Django drops a callback
    # only when a savepoint open at its registration rolls back, and any such savepoint still open
    # encloses this point too, so it would take these events with it.
    if conn.in_atomic_block and any(func is _nudge for _, func, _ in conn.run_on_commit):
        return
    transaction.on_commit(_nudge, robust=True)


def _nudge() -> None:
    """Run after commit (outside any transaction): start delivering what is due."""
    if current_app.conf.task_always_eager:
        _deliver_in_background()
    else:
        enqueue_on_commit("webhooks.tasks.deliver_due")  # no transaction open now: sent at once


def _deliver_in_background() -> None:
    thread = threading.Thread(target=_background_run, name="webhook-delivery", daemon=True)
    thread.start()


def _background_run() -> None:
    try:
        deliver_due()
    except Exception:  # a thread has no caller to report to: log, the sweep retries
        logger.exception("Webhook deliveries failed on the background thread")
    finally:
        close_old_connections()
        connection.close()


def due_ids(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> list[int]:
    """The oldest due deliveries (read only: `lease_due` is what the fan-out takes them with)."""
    now = now or timezone.now()
    return list(
        Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def lease_due(
    *, now: datetime | None = None, limit: int = SWEEP_BATCH, per_webhook: int = PER_WEBHOOK_BATCH
) -> tuple[datetime, list[int]]:
    """Take up to `limit` due deliveries, oldest first but at most `per_webhook` of any one
    webhook, by moving their next_attempt_at to the returned lease time (now +
    QUEUE_LEASE_SECONDS): no other fan-out takes them until the lease runs out, and the task
    queued for each claims it with that lease (`attempt(pk, lease=…)`).

    Portable (PostgreSQL, SQLite): one read of the candidates (a window per webhook), one
    conditional UPDATE that takes only rows still due (a concurrent fan-out that took some first
    keeps them: on PostgreSQL the UPDATE waits for its commit and re-checks), one read back of the
    rows that carry this lease."""
    now = now or timezone.now()
    lease = now + timedelta(seconds=QUEUE_LEASE_SECONDS)
    due = Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
    ranked = due.annotate(
        rank=Window(RowNumber(), partition_by=[F("webhook_id")], order_by=[F("next_attempt_at"), F("pk")])
    ).filter(rank__lte=per_webhook)
    ids = list(ranked.order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:limit])
    if not ids:
        return lease, []
    with transaction.atomic():
        if not due.filter(pk__in=ids).update(next_attempt_at=lease):
            return lease, []
        leased = set(
            Delivery.objects.filter(
                pk__in=ids, status=DeliveryStatus.PENDING, next_attempt_at=lease
            ).values_list("pk", flat=True)
        )
    return lease, [pk for pk in ids if pk in leased]


def release(ids: Sequence[int], lease: datetime, *, now: datetime | None = None) -> int:
    """Give leased rows whose task could not be sent back to the sweep at once (due now)."""
    return Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.PENDING, next_attempt_at=lease).update(
        next_attempt_at=now or timezone.now()
    )


def deliver_due(*, now: datetime | None = None) -> int:
    """Attempt every due delivery here and now (the embedded shape's background thread), batch
    after batch until nothing is due. Returns the attempts made."""
    done = 0
    while True:
        lease, ids = lease_due(now=now)
        if not ids:
            return done
        for pk in ids:
            if attempt(pk, lease=lease, now=now) is not None:
                done += 1


# --- Delivery -------------------------------------------------------------------------------------


def body_of(delivery: Delivery) -> bytes:
    envelope = {"id": str(delivery.event_id), **delivery.payload}
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def backoff_seconds(attempts: int) -> int:
    """Wait before the next try after `attempts` failures: base × 2^(attempts-1), capped."""
    base = int(settings.WEBHOOKS_RETRY_BASE_SECONDS)
    return int(min(base * 2 ** max(attempts - 1, 0), settings.WEBHOOKS_RETRY_MAX_SECONDS))


def attempt(
    delivery_id: int, *, now: datetime | None = None, lease: datetime | None = None
) -> Delivery | None:
    """Try one due delivery once; None when it is not due (another attempt has it, or it is done).

    With `lease` (the fan-out's, or a retry's scheduled time), the row is claimed only while its
    next_attempt_at still equals it: a duplicate task, or one whose lease ran out and was renewed
    by a later fan-out, finds another value and returns None.

    Success is any 2xx. A failure schedules the next try after `backoff_seconds`, up to
    WEBHOOKS_MAX_ATTEMPTS; then the delivery is "failed" (shown on the page, replayable). A URL
    the guard refuses fails at once: retrying will not make it public.
    """
    now = now or timezone.now()
    mine = Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
    mine = mine.filter(next_attempt_at=lease) if lease is not None else mine.filter(next_attempt_at__lte=now)
    claimed = mine.update(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS), last_attempt_at=now)
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("webhook").get(pk=delivery_id)
    webhook = delivery.webhook
    delivery.attempts += 1
    final = False
    if not webhook.active:
        answer = client.Answer(None, "The webhook was disabled before this delivery.", 0)
        final = True
    else:
        try:
            target = guard.check_url(webhook.url)
        except guard.UnsafeUrl as exc:
            answer = client.Answer(None, f"Refused: {exc}", 0)
            final = True
        else:
            body = body_of(delivery)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "LeadCRM-Webhooks/1",
                "X-LeadCRM-Event": delivery.event,
                "X-LeadCRM-Delivery": str(delivery.event_id),
                SIGNATURE_HEADER: sign(webhook.secret, body, int(now.timestamp())),
            }
            try:
                answer = client.post(target, body, headers)
            except Exception as exc:  # anything unforeseen is a failed attempt, retried like the rest
                logger.exception("Webhook delivery %s failed unexpectedly", delivery.pk)
                answer = client.Answer(None, f"Request failed ({type(exc).__name__}).", 0)
    delivery.response_code = answer.status
    delivery.duration_ms = answer.duration_ms
    delivery.error = answer.error[:ERROR_MAX]
    retry_in: int | None = None
    if not answer.error:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    elif final or delivery.attempts >= settings.WEBHOOKS_MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
    else:
        retry_in = backoff_seconds(delivery.attempts)
        delivery.next_attempt_at = now + timedelta(seconds=retry_in)
    delivery.save(
        update_fields=[
            "status",
            "attempts",
            "response_code",
            "duration_ms",
            "error",
            "delivered_at",
            "next_attempt_at",
        ]
    )
    if retry_in is not None and not current_app.conf.task_always_eager:
        # Celery waits out the backoff; if this message is lost the sweep finds the row when due.
        enqueue_now_later(delivery.pk, retry_in, lease=delivery.next_attempt_at)
    return delivery


def enqueue_now_later(delivery_id: int, countdown: int, *, lease: datetime | None = None) -> None:
    """The retry's task, `countdown` seconds from now, holding the row's scheduled time as its
    lease (a fan-out that takes the row when it comes due makes this task a no-op, or the reverse)."""
    args: tuple[Any, ...] = (delivery_id, lease.isoformat()) if lease is not None else (delivery_id,)
    try:  # by name: the tasks module imports this one
        task_named("webhooks.tasks.deliver").apply_async(args, countdown=countdown)
    except Exception as exc:  # broker away: the sweep picks the row up when it is due
        logger.warning("Could not schedule the webhook retry (%s); the sweep will", type(exc).__name__)


def sweep(*, now: datetime | None = None, limit: int = FANOUT_MAX) -> int:
    """Queue one task per due delivery, leased (`lease_due`), batch after batch until nothing is
    due: the nudge after a commit, and beat every WEBHOOKS_SWEEP_SECONDS for lost tasks and due
    retries. After `limit` rows it queues itself again (behind the tasks it sent, so the queue
    holds about one run's worth) and returns. Returns the tasks sent."""
    sent = 0
    while sent < limit:
        lease, ids = lease_due(now=now, limit=min(SWEEP_BATCH, limit - sent))
        if not ids:
            return sent
        stamp = lease.isoformat()
        for i, pk in enumerate(ids):
            if not enqueue_now("webhooks.tasks.deliver", pk, stamp):
                release(ids[i:], lease, now=now)  # broker away: due again for the next sweep
                return sent
            sent += 1
    enqueue_now("webhooks.tasks.deliver_due")  # more may be due: carry on after these
    return sent


def replay(*, delivery: Delivery, now: datetime | None = None) -> Delivery:
    """Send a delivery again as a new row (same event id, so receivers can dedupe), now."""
    now = now or timezone.now()
    with transaction.atomic():
        copy = Delivery.objects.create(
            webhook_id=delivery.webhook_id,
            event=delivery.event,
            event_id=delivery.event_id,
            payload=delivery.payload,
            created_at=now,
            next_attempt_at=now,
            replay_of=delivery,
        )
        queue_due()
    return copy


def send_test(*, webhook: Webhook, by: User | None = None) -> Delivery:
    """A webhook.test event to this webhook only, whatever it subscribes to."""
    now = timezone.now()
    data = {"webhook": {"id": webhook.pk, "name": webhook.name}, "sent_by": by.get_username() if by else None}
    with transaction.atomic():
        emit(TEST_EVENT, [data], webhook_ids=[webhook.pk], now=now)
    return Delivery.objects.filter(webhook=webhook, event=TEST_EVENT).order_by("-pk").first()  # type: ignore[return-value]


# --- What the CRM's signals become ------------------------------------------------------------------


def on_lead_created(*, lead: Lead) -> None:
    emit(Event.LEAD_CREATED, [{"lead": lead_summary(lead)}])


def on_status_changed(*, lead: Lead, status_from: str, status_to: str) -> None:
    if status_from == status_to:
        return
    _emit_status_changes([(lead, status_from, status_to)], subscriptions())


def _emit_status_changes(
    changes: Sequence[tuple[Lead, str, str]],
    hooks: Mapping[str, Sequence[int]],
    url_of: Callable[[int], str] = lead_url,
) -> int:
    """lead.status_changed for every change, and lead.won / lead.lost (with the reason) for those
    that closed the lead; one bulk INSERT per event, however many leads."""
    items = [
        (lead, {"lead": lead_summary(lead, url_of=url_of), "status_from": old, "status_to": new})
        for lead, old, new in changes
        if old != new
    ]
    written = emit(
        Event.STATUS_CHANGED, [item for _, item in items], webhook_ids=hooks.get(Event.STATUS_CHANGED, [])
    )
    written += emit(
        Event.LEAD_WON,
        [item for _, item in items if item["status_to"] == LeadStatus.WON],
        webhook_ids=hooks.get(Event.LEAD_WON, []),
    )
    written += emit(
        Event.LEAD_LOST,
        [
            {**item, "lost_reason": lead.lost_reason}
            for lead, item in items
            if item["status_to"] == LeadStatus.LOST
        ],
        webhook_ids=hooks.get(Event.LEAD_LOST, []),
    )
    return written


STATUS_EVENTS = (Event.STATUS_CHANGED, Event.LEAD_WON, Event.LEAD_LOST)
# What lead_summary reads (and lead.lost's reason): an import's leads are loaded with these only.
SUMMARY_FIELDS = ("id", "status", "grade", "source", "owner", "lost_reason")


def on_leads_imported(*, created: Sequence[int], status_changes: Sequence[tuple[int, str, str]]) -> int:
    """One chunk of an import (leadcrm.signals.leads_imported): lead.created for each lead it
    created, and the status events (as change_status emits them) for each existing lead whose
    outcome it set. Set-based, whatever the chunk's size: one read of the subscriptions, one read
    of the chunk's leads, one bulk INSERT per event (emit). Returns the deliveries written."""
    hooks = subscriptions()
    want_created = bool(hooks.get(Event.LEAD_CREATED)) and bool(created)
    changes = [(pk, old, new) for pk, old, new in status_changes if old != new]
    want_status = bool(changes) and any(hooks.get(event) for event in STATUS_EVENTS)
    if not (want_created or want_status):
        return 0
    ids = {*(created if want_created else ()), *(pk for pk, _, _ in changes if want_status)}
    leads = {lead.pk: lead for lead in Lead.objects.filter(pk__in=ids).only(*SUMMARY_FIELDS)}
    url_of = lead_urls()
    written = 0
    if want_created:
        written += emit(
            Event.LEAD_CREATED,
            [{"lead": lead_summary(leads[pk], url_of=url_of)} for pk in created if pk in leads],
            webhook_ids=hooks[Event.LEAD_CREATED],
        )
    if want_status:
        written += _emit_status_changes(
            [(leads[pk], old, new) for pk, old, new in changes if pk in leads], hooks, url_of
        )
    return written


def on_grades_changed(*, changes: Sequence[tuple[int, str, str]]) -> None:
    """Set-based: every changed grade of one score write, in one INSERT per event."""
    hot = set(settings.WEBHOOKS_HOT_GRADES)
    moved = [(pk, old or "", new or "") for pk, old, new in changes if (old or "") != (new or "")]
    if not moved:
        return
    url_of = lead_urls()  # one reverse() for the whole write
    emit(
        Event.GRADE_CHANGED,
        [
            {"lead": {"id": pk, "url": url_of(pk)}, "grade_from": old, "grade_to": new}
            for pk, old, new in moved
        ],
    )
    emit(
        Event.BECAME_HOT,
        [
            {"lead": {"id": pk, "url": url_of(pk)}, "grade_from": old, "grade_to": new}
            for pk, old, new in moved
            if new in hot and old not in hot
        ],
    )


def on_chat_handed_off(*, lead_id: int | None, conversation_id: int, site_id: int) -> None:
    lead = {"id": lead_id, "url": lead_url(lead_id)} if lead_id else None
    emit(Event.CHAT_HANDED_OFF, [{"lead": lead, "conversation_id": conversation_id, "site_id": site_id}])


def emit_overdue_follow_ups(*, now: datetime | None = None) -> int:
    """Follow-ups that became overdue since the last scan, each emitted once (beat, every minute).

    One range query over (last scan, now]; the delivery's dedupe key makes a second emission of the
    same follow-up a no-op even if two scans overlap. The first scan looks back one hour."""
    now = now or timezone.now()
    with transaction.atomic():
        mark, created = Watermark.objects.select_for_update().get_or_create(
            name=OVERDUE_MARK, defaults={"value": now - timedelta(hours=1)}
        )
        since = mark.value
        if since >= now:
            return 0
        rows = list(
            FollowUp.objects.filter(done_at__isnull=True, due_at__gt=since, due_at__lte=now)
            .order_by("due_at")
            .values("pk", "lead_id", "due_at", "assigned_to_id")
        )
        written = 0
        if rows:
            written = emit(
                Event.FOLLOW_UP_OVERDUE,
                [
                    {
                        "follow_up": {
                            "id": r["pk"],
                            "due_at": r["due_at"].isoformat(),
                            "assigned_to_id": r["assigned_to_id"],
                        },
                        "lead": {"id": r["lead_id"], "url": lead_url(r["lead_id"])},
                    }
                    for r in rows
                ],
                dedupe_keys=[f"follow_up.overdue:{r['pk']}" for r in rows],
                now=now,
            )
        Watermark.objects.filter(pk=mark.pk).update(value=now)
    return written
