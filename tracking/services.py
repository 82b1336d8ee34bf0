"""Website tracking: store a visitor's events, link a visitor to a lead, move the events over.

Hot path (`store_events`): one INSERT … ON CONFLICT DO NOTHING of the request's events into
TrackedEvent, or, for a visitor already linked to a lead, straight onto the lead's timeline
through `leadcrm.services.record_interactions_bulk`. A link is made only from what the server
verified: a chat conversation that got its lead (`chatbot.signals.visitor_identified`), or an
identity signed with the site's secret (`identify_signed`); and only for a visitor id this
server issued. Events that arrive while a link is being made are moved by the sweep.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from chatbot.models import Site
from chatbot.services import conversation_by_token
from leadcrm import services as crm
from leadcrm.models import Interaction, InteractionKind, Lead, LeadSource
from tracking.models import EventType, TrackedEvent, TrackingMode, TrackingSettings, VisitorLink
from tracking.visitors import is_issued

logger = logging.getLogger(__name__)

# Each tracked event type as it lands on the lead's timeline. A custom event (leadcrm.track(name))
# is a custom_event named in payload "name", which a scoring rule's pattern matches.
INTERACTION_KIND = {
    EventType.PAGE_VIEW: InteractionKind.PAGE_VIEW,
    EventType.FORM_SUBMIT: InteractionKind.FORM_SUBMIT,
    EventType.DOWNLOAD: InteractionKind.CONTENT_DOWNLOAD,
    EventType.CUSTOM: InteractionKind.CUSTOM_EVENT,
}
EVENT_ID_PREFIX = "trk_"  # client_event_id on the timeline: the script's event id, prefixed
MOVE_CHUNK = 1000
CACHE_SECONDS = 5.0


@dataclass
class Event:
    """One validated event of the snippet (payload already as it will be stored)."""

    event_id: str
    type: int
    occurred_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    page_id: str = ""  # time on page: the page view's event id
    seconds: int = 0


# --- Per-process caches (every request needs them; a few seconds stale at most) ---------------

_modes: dict[int, tuple[float, str]] = {}
_links: dict[tuple[int, str], tuple[float, int | None]] = {}


def tracking_mode(site: Site) -> str:
    """The site's tracking mode (after consent if it never chose one), cached for a few seconds."""
    hit = _modes.get(site.pk)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    mode = TrackingSettings.objects.filter(site=site).values_list("mode", flat=True).first()
    _modes[site.pk] = (time.monotonic(), mode or TrackingMode.AFTER_CONSENT)
    return _modes[site.pk][1]


def set_tracking_mode(*, site: Site, mode: str) -> TrackingSettings:
    """Choose how the site's snippet tracks (off / after consent / anonymous until consent)."""
    if mode not in TrackingMode.values:
        raise ValueError(f"Unknown tracking mode {mode!r}; use one of {', '.join(TrackingMode.values)}.")
    row, _ = TrackingSettings.objects.update_or_create(site=site, defaults={"mode": mode})
    _modes.pop(site.pk, None)
    return row


def linked_lead(site_id: int, visitor_id: str) -> int | None:
    """The lead this visitor id was linked to (cached a few seconds), or None."""
    key = (site_id, visitor_id)
    hit = _links.get(key)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    lead_id = (
        VisitorLink.objects.filter(site_id=site_id, visitor_id=visitor_id)
        .values_list("lead_id", flat=True)
        .first()
    )
    if len(_links) > 50_000:
        _links.clear()
    _links[key] = (time.monotonic(), lead_id)
    return lead_id


def clear_caches() -> None:
    _modes.clear()
    _links.clear()
    _chat_leads.clear()


# --- Storing events ------------------------------------------------------------------------------


@dataclass
class Stored:
    stored: int = 0
    duplicates: int = 0


def store_events(
    *,
    site: Site,
    visitor_id: str,
    events: Sequence[Event],
    now: datetime,
    chat_token: str = "",
    chat_widget: bool = False,
) -> Stored:
    """Store validated snippet events (durable when this returns): on the lead's timeline if the
    visitor is linked (or links now through the chat token the browser holds), else in
    TrackedEvent. A resent event (same id) counts as a duplicate. While the chat widget on the
    page has an open conversation it records the page views itself: the snippet's are skipped."""
    if visitor_id:
        lead_id = linked_lead(site.pk, visitor_id)
        if lead_id is None and chat_token:
            lead_id = link_by_chat_token(site=site, visitor_id=visitor_id, chat_token=chat_token)
        if lead_id is not None:
            if chat_widget and chat_token and _chat_of(site, chat_token)[1]:
                kept = [e for e in events if e.type != EventType.PAGE_VIEW]
                skipped = Stored(stored=len(events) - len(kept))
                if not kept:
                    return skipped
                result = _store_for_lead(lead_id, kept, now)
                return Stored(stored=result.stored + skipped.stored, duplicates=result.duplicates)
            return _store_for_lead(lead_id, events, now)
    table = TrackedEvent._meta.db_table
    payload_sql = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    row_sql = f"(%s, %s, %s, %s, %s, {payload_sql}, %s)"
    adapt = connection.ops.adapt_datetimefield_value
    received = adapt(now)
    params: list[Any] = []
    for e in events:
        payload = e.payload
        if e.type == EventType.TIME_ON_PAGE:
            payload = {"page_id": e.page_id, "seconds": e.seconds}
        params += [
            site.pk,
            visitor_id,
            e.event_id,
            e.type,
            adapt(e.occurred_at),
            json.dumps(payload),
            received,
        ]
    sql = (
        f"INSERT INTO {table} (site_id, visitor_id, event_id, type, occurred_at, payload, received_at) "
        f"VALUES {', '.join([row_sql] * len(events))} ON CONFLICT DO NOTHING RETURNING event_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        stored = len(cursor.fetchall())
    return Stored(stored=stored, duplicates=len(events) - stored)


def _payload(e: Event) -> dict[str, Any]:
    # A custom event that waited in TrackedEvent from before custom_event named it only in "event".
    if e.type == EventType.CUSTOM and "name" not in e.payload and "event" in e.payload:
        return {**e.payload, "name": e.payload["event"]}
    return e.payload


def _bulk_events(lead_id: int, events: Sequence[Event]) -> list[crm.BulkEvent]:
    return [
        crm.BulkEvent(
            lead_id=lead_id,
            kind=int(INTERACTION_KIND[EventType(e.type)]),
            occurred_at=e.occurred_at,
            client_event_id=EVENT_ID_PREFIX + e.event_id,
            payload=_payload(e),
            channel="web",
        )
        for e in events
    ]


CHAT_PAGE_WINDOW = timedelta(minutes=2)


def _without_chat_page_views(lead_id: int, events: list[Event]) -> tuple[list[Event], int]:
    """The chat widget records the pages it sees too (payload via "chat_widget"): a page view it
    already put on the timeline is not counted twice. One query; returns (kept, dropped)."""
    views = [e for e in events if e.type == EventType.PAGE_VIEW]
    if not views:
        return events, 0
    low = min(e.occurred_at for e in views) - CHAT_PAGE_WINDOW
    high = max(e.occurred_at for e in views) + CHAT_PAGE_WINDOW
    chat_views: dict[str, list[datetime]] = {}
    for url, at in Interaction.objects.filter(
        lead_id=lead_id,
        kind=InteractionKind.PAGE_VIEW,
        occurred_at__range=(low, high),
        payload__via="chat_widget",
    ).values_list("payload__url", "occurred_at"):
        parts = urlsplit(str(url or ""))
        chat_views.setdefault(f"{parts.scheme}://{parts.netloc}{parts.path}", []).append(at)

    def seen_by_chat(e: Event) -> bool:
        times = chat_views.get(str(e.payload.get("url")), [])
        return any(abs(at - e.occurred_at) <= CHAT_PAGE_WINDOW for at in times)

    kept = [e for e in events if not (e.type == EventType.PAGE_VIEW and seen_by_chat(e))]
    return kept, len(events) - len(kept)


def _store_for_lead(lead_id: int, events: Sequence[Event], now: datetime) -> Stored:
    timed = [e for e in events if e.type == EventType.TIME_ON_PAGE]
    others, dropped = _without_chat_page_views(
        lead_id, [e for e in events if e.type != EventType.TIME_ON_PAGE]
    )
    result = Stored(stored=dropped)  # on the timeline already (the chat's own page view)
    with transaction.atomic():
        if others:
            bulk = crm.record_interactions_bulk(events=_bulk_events(lead_id, others), now=now)
            result.stored += len(bulk.stored)
            # Refusals cannot happen for validated snippet events but for an erased lead: its
            # events are not kept anywhere, and the answer says they were not stored.
            result.duplicates += len(bulk.duplicates)
        for e in timed:
            if crm.add_time_on_page(
                lead_id=lead_id, client_event_id=EVENT_ID_PREFIX + e.page_id, seconds=e.seconds
            ):
                result.stored += 1
    return result


# --- Linking a visitor to a lead -----------------------------------------------------------------


def link_visitor(
    *, site_id: int, visitor_id: str, lead_id: int, via: str, now: datetime | None = None
) -> bool:
    """Link a visitor id this server issued to a lead, then move its waiting events after commit.

    Call it only with what the server verified (a conversation's lead, a signed identity). A
    visitor id the server did not issue links nothing (False). A browser that identifies as
    someone else later is linked to the newest lead; what was moved stays where it went. An
    erased lead gets no new link (its browser stays an anonymous visitor)."""
    if not is_issued(site_id, visitor_id):
        return False
    if Lead.objects.filter(pk=lead_id, erased_at__isnull=False).exists():
        return False
    now = now or timezone.now()
    VisitorLink.objects.update_or_create(
        site_id=site_id, visitor_id=visitor_id, defaults={"lead_id": lead_id, "linked_at": now, "via": via}
    )
    _links[(site_id, visitor_id)] = (time.monotonic(), lead_id)
    # After the caller's commit, outside its transaction: a failure here must not undo a chat;
    # the sweep moves whatever is left.
    transaction.on_commit(partial(move_waiting_events, site_id=site_id, visitor_id=visitor_id), robust=True)
    return True


_chat_leads: dict[tuple[int, str], tuple[float, int | None, bool]] = {}


def _chat_of(site: Site, chat_token: str) -> tuple[int | None, bool]:
    """(lead, open) of the site's conversation whose server-issued token this is; the lead only
    if that visitor has rights to it (their chat made it, or a signed identity linked it)."""
    key = (site.pk, chat_token)
    hit = _chat_leads.get(key)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1], hit[2]
    conversation = conversation_by_token(site=site, token=chat_token)
    lead_id, is_open = None, False
    if conversation is not None:
        is_open = conversation.is_open
        if conversation.lead_created or conversation.identity_verified:
            lead_id = conversation.lead_id
        if conversation.lead is not None and conversation.lead.erased_at is not None:
            lead_id = None  # an erased person's old chat token links nothing (loaded with the chat)
    if len(_chat_leads) > 50_000:
        _chat_leads.clear()
    _chat_leads[key] = (time.monotonic(), lead_id, is_open)
    return lead_id, is_open


def link_by_chat_token(*, site: Site, visitor_id: str, chat_token: str) -> int | None:
    """Link the visitor to the lead of the chat whose token the same browser holds (the token is
    the server's own credential; the visitor id alone proves nothing). Returns the lead id."""
    if not (visitor_id and chat_token) or len(chat_token) > 64:
        return None
    lead_id, _ = _chat_of(site, chat_token)
    if lead_id is None or not link_visitor(
        site_id=site.pk, visitor_id=visitor_id, lead_id=lead_id, via="chat"
    ):
        return None
    return lead_id


def on_visitor_identified(sender: Any, *, site_id: int, visitor_id: str, lead_id: int, **kwargs: Any) -> None:
    """chatbot.signals.visitor_identified: the chat's conversation token vouches for the link."""
    link_visitor(site_id=site_id, visitor_id=visitor_id, lead_id=lead_id, via="chat")


class IdentityRefused(Exception):
    pass


def identify_signed(
    *, site: Site, visitor_id: str, email: str, signature: str, now: datetime | None = None
) -> Lead:
    """Link the visitor to the lead of an email the business's server signed (made if new)."""
    if not site.verify_identity(email, signature):
        raise IdentityRefused("The identity signature does not match this email.")
    if not is_issued(site.pk, visitor_id):
        raise IdentityRefused("This visitor id was not issued by this server for this site.")
    now = now or timezone.now()
    email = email.strip().lower()
    with transaction.atomic():
        lead = Lead.objects.filter(email__iexact=email).first()
        if lead is None:
            lead = crm.create_lead(source=LeadSource.WEB_FORM, email=email, visitor_id=visitor_id, now=now)
        link_visitor(site_id=site.pk, visitor_id=visitor_id, lead_id=lead.pk, via="signed_identity", now=now)
    return lead


def move_waiting_events(*, site_id: int, visitor_id: str) -> int:
    """Move a linked visitor's waiting events onto the lead's timeline, set-based, in chunks.
    Time on page goes into its page view's payload. Returns the events stored."""
    lead_id = (
        VisitorLink.objects.filter(site_id=site_id, visitor_id=visitor_id)
        .values_list("lead_id", flat=True)
        .first()
    )
    if lead_id is None or not visitor_id:
        return 0
    stored = 0
    while True:
        with transaction.atomic():
            rows = list(
                TrackedEvent.objects.select_for_update(skip_locked=True)
                .filter(site_id=site_id, visitor_id=visitor_id)
                .order_by("id")
                .values_list("id", "event_id", "type", "occurred_at", "payload")[:MOVE_CHUNK]
            )
            if not rows:
                return stored
            events = [
                Event(event_id=eid, type=kind, occurred_at=at, payload=dict(p))
                for _, eid, kind, at, p in rows
            ]
            seconds = {
                str(e.payload.get("page_id")): e.payload.get("seconds")
                for e in events
                if e.type == EventType.TIME_ON_PAGE
            }
            views = {e.event_id for e in events if e.type == EventType.PAGE_VIEW}
            for e in events:
                if e.type == EventType.PAGE_VIEW and isinstance(seconds.get(e.event_id), int):
                    e.payload["seconds"] = seconds[e.event_id]
            late = [
                Event(
                    event_id="",
                    type=EventType.TIME_ON_PAGE,
                    occurred_at=timezone.now(),
                    page_id=pid,
                    seconds=s,
                )
                for pid, s in seconds.items()
                if pid not in views and isinstance(s, int)
            ]
            others = [e for e in events if e.type != EventType.TIME_ON_PAGE]
            result = _store_for_lead(lead_id, others + late, timezone.now())
            stored += result.stored
            TrackedEvent.objects.filter(pk__in=[r[0] for r in rows]).delete()


def sweep(*, now: datetime | None = None, limit: int = 500) -> tuple[int, int]:
    """Move waiting events of linked visitors (events that raced a link), and delete anonymous
    events older than TRACKING_ANONYMOUS_DAYS. Returns (events moved, events deleted)."""
    now = now or timezone.now()
    linked = VisitorLink.objects.filter(site_id=OuterRef("site_id"), visitor_id=OuterRef("visitor_id"))
    pairs = list(
        TrackedEvent.objects.filter(Exists(linked))
        .exclude(visitor_id="")
        .values_list("site_id", "visitor_id")
        .distinct()[:limit]
    )
    moved = sum(move_waiting_events(site_id=s, visitor_id=v) for s, v in pairs)
    days = settings.TRACKING_ANONYMOUS_DAYS
    deleted = 0
    if days > 0:
        deleted, _ = TrackedEvent.objects.filter(received_at__lt=now - timedelta(days=days)).delete()
    return moved, deleted


# --- A person's data (privacy: erasure and export, through signals) ------------------------------


def forget_leads(*, lead_ids: Sequence[int]) -> tuple[int, int]:
    """Erasure (leadcrm.signals.leads_erased, in the erasure's transaction): delete these leads'
    visitor links and the events still waiting under those visitor ids (events that raced a link),
    set-based, and drop the links from this process's cache. Later events of those browsers are
    anonymous visitors' again. Another process may send a visitor's events to the erased lead for
    up to CACHE_SECONDS from its cache; the CRM refuses them (the lead is erased), nothing is kept.
    Returns (links deleted, events deleted)."""
    ids = sorted({int(i) for i in lead_ids})
    if not ids:
        return 0, 0
    links = VisitorLink.objects.filter(lead_id__in=ids)
    pairs = list(links.values_list("site_id", "visitor_id"))
    if not pairs:
        return 0, 0
    of_these_leads = links.filter(site_id=OuterRef("site_id"), visitor_id=OuterRef("visitor_id"))
    events, _ = TrackedEvent.objects.filter(Exists(of_these_leads)).delete()
    deleted, _ = links.delete()
    _forget_links(pairs)
    transaction.on_commit(partial(_forget_links, pairs), robust=True)  # and what was read meanwhile
    return deleted, events


def _forget_links(pairs: Sequence[tuple[int, str]]) -> None:
    for key in pairs:
        _links.pop(key, None)


def on_leads_erased(sender: Any, *, lead_ids: Sequence[int], **kwargs: Any) -> None:
    forget_leads(lead_ids=lead_ids)


def person_website_data(lead_id: int) -> dict[str, list[dict[str, Any]]]:
    """A person's website data for the privacy export: the visitor ids linked to the lead, and the
    events still waiting under them (moved onto the timeline within a minute, normally). Two queries."""
    links = VisitorLink.objects.filter(lead_id=lead_id)
    visitors = [
        {
            "site": row["site__name"],
            "visitor_id": row["visitor_id"],
            "linked_at": row["linked_at"].isoformat(),
            "via": row["via"],
        }
        for row in links.order_by("linked_at", "id").values("site__name", "visitor_id", "linked_at", "via")
    ]
    if not visitors:
        return {}
    of_this_lead = links.filter(site_id=OuterRef("site_id"), visitor_id=OuterRef("visitor_id"))
    events = [
        {
            "id": row["id"],
            "site": row["site__name"],
            "visitor_id": row["visitor_id"],
            "type": EventType(row["type"]).name.lower(),
            "occurred_at": row["occurred_at"].isoformat(),
            "payload": row["payload"],
        }
        for row in TrackedEvent.objects.filter(Exists(of_this_lead))
        .order_by("occurred_at", "id")
        .values("id", "site__name", "visitor_id", "type", "occurred_at", "payload")
    ]
    return {"website_visitors": visitors, "website_events_waiting": events}


def on_person_data_requested(sender: Any, *, lead_id: int, **kwargs: Any) -> dict[str, list[dict[str, Any]]]:
    return person_website_data(lead_id)
