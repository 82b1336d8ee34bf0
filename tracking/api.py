"""The tracking APIs: the snippet's public endpoints and the authenticated batch events API.

Public, under /api/v1/track/sites/<key>/ (site key + allowed Origin, as the chat widget):
  GET  config   the site's tracking mode and a fresh server-signed visitor id
  POST events   1–20 events of one visitor; the hot path (lean: no DRF request, no serializers)
  POST identify a visitor id + an email signed with the site's identity secret
The snippet posts as text/plain (what navigator.sendBeacon sends: no CORS preflight, no custom
header), so the visitor id travels in the body; it is worth nothing unless this server issued it.

Authenticated: POST /api/v1/events/batch (managers, or users with tracking.ingest_events): up to
1,000 events, each stored at most once per (lead, event_id); every event gets its own answer.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from accounts.throttle import client_ip
from chatbot.api import ChatThrottle, PublicChatView, cached_site, request_origin
from leadcrm import services as crm
from leadcrm.models import InteractionKind, Lead, json_problem
from leadcrm.permissions import is_manager
from tracking import limits, services
from tracking.models import EventType, TrackingMode
from tracking.visitors import is_issued, issue_visitor_id

MAX_BODY_BYTES = 32 * 1024
MAX_EVENTS_PER_REQUEST = 20
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
TYPES = {
    "page_view": EventType.PAGE_VIEW,
    "form_submit": EventType.FORM_SUBMIT,
    "download": EventType.DOWNLOAD,
    "custom": EventType.CUSTOM,
    "time_on_page": EventType.TIME_ON_PAGE,
}
MAX_CLOCK_SKEW = timedelta(days=1)


class BadEvent(Exception):
    pass


def _dnt(request: HttpRequest) -> bool:
    return request.headers.get("DNT") == "1" or request.headers.get("Sec-GPC") == "1"


def _text(event: dict[str, Any], key: str, limit: int, i: int) -> str:
    value = event.get(key, "")
    if not isinstance(value, str):
        raise BadEvent(f"Event {i}: {key} must be text.")
    if "\x00" in value:
        raise BadEvent(f"Event {i}: {key} contains a NUL character.")
    return value[:limit]


def _page_url(value: str, i: int, key: str = "url", required: bool = True) -> tuple[str, dict[str, str]]:
    """The URL without its query string or fragment (they can carry emails or tokens), and its UTM tags."""
    if not value:
        if required:
            raise BadEvent(f"Event {i}: {key} is required (the page's address).")
        return "", {}
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadEvent(f"Event {i}: {key} must be an http:// or https:// address.")
    utm = {k: v[:100] for k, v in parse_qsl(parts.query) if k in UTM_KEYS and v}
    return f"{parts.scheme}://{parts.netloc}{parts.path}"[:500], utm


def parse_event(raw: Any, i: int, now: datetime) -> services.Event:
    """One snippet event, validated; raises BadEvent with a sentence saying what to change."""
    if not isinstance(raw, dict):
        raise BadEvent(f"Event {i} must be an object.")
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not EVENT_ID_RE.match(event_id):
        raise BadEvent(f"Event {i}: id must be 8–64 letters, digits, '-' or '_' (unique per event).")
    kind = TYPES.get(raw.get("type"))  # type: ignore[arg-type]
    if kind is None:
        raise BadEvent(f"Event {i}: type must be one of {', '.join(TYPES)}.")
    at = raw.get("at")
    occurred = now
    if at is not None:
        if isinstance(at, bool) or not isinstance(at, int | float):
            raise BadEvent(f"Event {i}: at is the time in milliseconds since 1970 (a number).")
        try:
            when = datetime.fromtimestamp(at / 1000, tz=UTC)
        except (OverflowError, ValueError, OSError):
            raise BadEvent(f"Event {i}: at is out of range.") from None
        # A browser's clock may be wrong: trust it within a day, never into the future.
        if now - MAX_CLOCK_SKEW <= when <= now:
            occurred = when
    event = services.Event(event_id=event_id, type=kind, occurred_at=occurred)
    if kind == EventType.TIME_ON_PAGE:
        page_id, seconds = raw.get("page_id"), raw.get("seconds")
        if not isinstance(page_id, str) or not EVENT_ID_RE.match(page_id):
            raise BadEvent(f"Event {i}: page_id must be the id of the page view.")
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= 86_400:
            raise BadEvent(f"Event {i}: seconds must be a whole number from 0 to 86400.")
        event.page_id, event.seconds = page_id, seconds
        return event
    url, utm = _page_url(_text(raw, "url", 2000, i), i)
    payload: dict[str, Any] = {"url": url, "via": "tracking"}
    title = _text(raw, "title", 200, i)
    if title:
        payload["title"] = title
    if kind == EventType.PAGE_VIEW:
        referrer, _ = _page_url(_text(raw, "referrer", 2000, i), i, "referrer", required=False)
        if referrer:
            payload["referrer"] = referrer
        payload.update(utm)
    elif kind == EventType.FORM_SUBMIT:
        payload["form"] = _text(raw, "form", 100, i)
    elif kind == EventType.DOWNLOAD:
        file_url, _ = _page_url(_text(raw, "file", 2000, i), i, "file")
        payload["file"] = file_url
    else:  # custom
        name = raw.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise BadEvent(f"Event {i}: name must be 1–64 letters, digits or _ . : - (e.g. signup).")
        props = raw.get("props", {})
        if not isinstance(props, dict) or len(props) > 20:
            raise BadEvent(f"Event {i}: props must be an object of at most 20 keys.")
        if problem := json_problem(props):
            raise BadEvent(f"Event {i}: props: {problem}")
        if len(json.dumps(props)) > 2000:
            raise BadEvent(f"Event {i}: props must stay under 2000 characters as JSON.")
        # A custom_event on the timeline: a rule's pattern matches its "name" ("event" is the
        # older key, kept), and the page goes under "page" so that a URL pattern does not match it.
        payload["page"] = payload.pop("url")
        payload.update(event=name, name=name, props=props)
    event.payload = payload
    return event


# --- Public endpoints ---------------------------------------------------------------------------


class TrackIpThrottle(ChatThrottle):
    """Tracking config and identify requests, per client IP, per minute (track_ip)."""

    scope = "track_ip"


class TrackSiteThrottle(ChatThrottle):
    scope = "track_site"

    def ident(self, request: Request, view: Any) -> str:
        return f"site{view.site.pk}"


class PublicTrackView(PublicChatView):
    throttle_classes = [TrackIpThrottle, TrackSiteThrottle]


ConfigOut = inline_serializer(
    "TrackingConfig",
    {
        "mode": serializers.ChoiceField(choices=TrackingMode.values),
        "do_not_track": serializers.BooleanField(
            help_text="The browser asked not to be tracked: send nothing."
        ),
        "visitor_id": serializers.CharField(
            allow_blank=True, help_text="A fresh id signed by this server; keep it only after consent."
        ),
    },
)


class TrackingConfigView(PublicTrackView):
    @extend_schema(
        responses=ConfigOut, summary="Tracking mode of a site, and a new visitor id", tags=["tracking"]
    )
    def get(self, request: Request, key: str) -> Response:
        dnt = _dnt(request)
        mode = services.tracking_mode(self.site)
        return Response(
            {
                "mode": mode,
                "do_not_track": dnt,
                "visitor_id": "" if dnt or mode == TrackingMode.OFF else issue_visitor_id(self.site.pk),
            }
        )


IdentifyIn = inline_serializer(
    "TrackingIdentifyIn",
    {
        "visitor_id": serializers.CharField(max_length=64),
        "email": serializers.CharField(max_length=254),
        "signature": serializers.CharField(max_length=128),
    },
)
IdentifyOut = inline_serializer("TrackingIdentifyOut", {"identified": serializers.BooleanField()})


class TextPlainJSONParser(JSONParser):
    """JSON sent as text/plain, as the snippet sends it (a simple request: no CORS preflight)."""

    media_type = "text/plain"


class TrackingIdentifyView(PublicTrackView):
    parser_classes = [JSONParser, TextPlainJSONParser]

    @extend_schema(
        request=IdentifyIn,
        responses=IdentifyOut,
        summary="Link a visitor to the lead of an email your server signed",
        tags=["tracking"],
    )
    def post(self, request: Request, key: str) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        fields = {name: data.get(name) for name in ("visitor_id", "email", "signature")}
        missing = [name for name, value in fields.items() if not isinstance(value, str) or not value]
        if missing:
            raise DRFValidationError(dict.fromkeys(missing, "Give it as text."))
        if services.tracking_mode(self.site) == TrackingMode.OFF or _dnt(request):
            raise PermissionDenied("Tracking is off for this site or this browser.")
        try:
            services.identify_signed(site=self.site, **fields)  # type: ignore[arg-type]
        except services.IdentityRefused as exc:
            raise PermissionDenied(str(exc)) from None
        except ValidationError as exc:
            raise DRFValidationError({"email": exc.messages}) from None
        return Response({"identified": True})


EventsOut = inline_serializer(
    "TrackedEventsOut",
    {
        "stored": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(help_text="Events sent before (same id): stored once."),
        "ignored": serializers.CharField(required=False, help_text="Why nothing was stored (Do-Not-Track)."),
    },
)
EventsIn = inline_serializer(
    "TrackedEventsIn",
    {
        "visitor_id": serializers.CharField(
            required=False, allow_blank=True, help_text="The id from the config response; blank: anonymous."
        ),
        "consent": serializers.BooleanField(required=False, help_text="The visitor consented to tracking."),
        "chat_token": serializers.CharField(
            required=False,
            allow_blank=True,
            help_text="The chat widget's conversation token, if the browser has one: links the visitor "
            "to the chat's lead (the server issued the token; a visitor id alone links nothing).",
        ),
        "chat_widget": serializers.BooleanField(
            required=False, help_text="The chat widget is on the page (it reports page views of open chats)."
        ),
        "events": serializers.ListField(
            child=serializers.DictField(),
            max_length=MAX_EVENTS_PER_REQUEST,
            help_text="{id, type: page_view|form_submit|download|custom|time_on_page, at (ms), url, "
            "title, referrer, form, file, name, props, page_id, seconds}",
        ),
    },
)


def _json(data: dict[str, Any], status: int = 200) -> JsonResponse:
    return JsonResponse(data, status=status)


class TrackEventsView(APIView):
    """The snippet's events. Lean on purpose (the hottest endpoint): its own dispatch, no DRF
    request or serializer; the same checks as every widget endpoint (site key + Origin, limits)."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes = [TrackIpThrottle]  # documents the 429; the limits are tracking.limits

    @extend_schema(
        request={"text/plain": EventsIn, "application/json": EventsIn},
        responses={200: EventsOut, 413: OpenApiResponse(description="Body over 32 KB.")},
        summary="Events of one website visitor (the tracking snippet)",
        tags=["tracking"],
    )
    def post(self, request: Request, key: str) -> Response:  # pragma: no cover - dispatch answers
        """Declared for the schema only: `dispatch` below answers every request itself."""
        return self.http_method_not_allowed(request)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        origin = request_origin(request)
        site = cached_site(str(kwargs.get("key", "")))
        response: HttpResponse
        if site is None or not site.allows_origin(origin):
            response = _json(
                {"detail": "Unknown site key, or this website (Origin) is not allowed to use it."}, 403
            )
        elif request.method == "OPTIONS":
            response = HttpResponse(status=204)
        elif request.method != "POST":
            response = _json({"detail": f'Method "{request.method}" not allowed.'}, 405)
            response["Allow"] = "POST, OPTIONS"
        else:
            response = self.events(request, site)
        if site is not None and origin and site.allows_origin(origin):
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response["Access-Control-Allow-Headers"] = "Content-Type"
            response["Access-Control-Expose-Headers"] = "Retry-After"
            response["Access-Control-Max-Age"] = "600"
        response["Vary"] = "Origin"
        return response

    def events(self, request: HttpRequest, site: Any) -> HttpResponse:
        wait = limits.retry_after(ip=client_ip(request) or "-", site_id=site.pk)
        if wait is not None:
            response = _json({"detail": f"Too many tracking requests; try again in {wait} s."}, 429)
            response["Retry-After"] = str(wait)
            return response
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            return _json({"detail": f"Send at most {MAX_BODY_BYTES // 1024} KB of events per request."}, 413)
        if _dnt(request):
            return _json({"stored": 0, "duplicates": 0, "ignored": "Do-Not-Track"})
        try:
            body = json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError):
            return _json({"detail": "Send a JSON object: {visitor_id, consent, events: [...]}."}, 400)
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            return _json({"detail": "Send a JSON object with an events list."}, 400)
        events_raw = body["events"]
        if not 0 < len(events_raw) <= MAX_EVENTS_PER_REQUEST:
            return _json({"detail": f"Send 1 to {MAX_EVENTS_PER_REQUEST} events per request."}, 400)
        consent = body.get("consent", False)
        visitor_id = body.get("visitor_id", "")
        if not isinstance(consent, bool) or not isinstance(visitor_id, str):
            return _json({"detail": "consent is true or false; visitor_id is text."}, 400)
        mode = services.tracking_mode(site)
        if mode == TrackingMode.OFF:
            return _json({"detail": "Tracking is off for this site."}, 403)
        if not consent:
            if mode == TrackingMode.AFTER_CONSENT:
                return _json(
                    {
                        "detail": "This site tracks visitors only after their consent; send consent: true then."
                    },
                    403,
                )
            visitor_id = ""  # anonymous until consent: nothing that could link these events later
        if visitor_id and not is_issued(site.pk, visitor_id):
            return _json(
                {"detail": "visitor_id was not issued by this server for this site; use the config's."}, 400
            )
        now = timezone.now()
        try:
            events = [parse_event(raw, i, now) for i, raw in enumerate(events_raw)]
        except BadEvent as exc:
            return _json({"detail": str(exc)}, 400)
        if len({e.event_id for e in events}) != len(events):
            return _json({"detail": "Each event needs its own id."}, 400)
        chat_token = body.get("chat_token", "")
        if not isinstance(chat_token, str):
            return _json({"detail": "chat_token is text (the chat widget's conversation token)."}, 400)
        result = services.store_events(
            site=site,
            visitor_id=visitor_id,
            events=events,
            now=now,
            chat_token=chat_token if visitor_id else "",
            chat_widget=body.get("chat_widget") is True,
        )
        return _json({"stored": result.stored, "duplicates": result.duplicates})


# --- Batch events API (integrations) --------------------------------------------------------------


class CanIngestEvents(BasePermission):
    message = (
        "Sending events needs a manager, or the 'Can send events through the batch events API' permission."
    )

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(
            user and user.is_authenticated and (is_manager(user) or user.has_perm("tracking.ingest_events"))
        )


class BatchThrottle(UserRateThrottle):
    scope = "events_batch"


BatchEventIn = inline_serializer(
    "BatchEventIn",
    {
        "event_id": serializers.CharField(
            max_length=100, help_text="Your id: a retried event is stored once."
        ),
        "lead_id": serializers.IntegerField(required=False),
        "email": serializers.CharField(required=False, help_text="Instead of lead_id."),
        "kind": serializers.ChoiceField(choices=[k.slug for k in InteractionKind]),
        "occurred_at": serializers.DateTimeField(),
        "payload": serializers.DictField(required=False),
    },
)
BatchIn = inline_serializer(
    "BatchEventsIn", {"events": serializers.ListField(child=BatchEventIn, max_length=crm.MAX_BULK_EVENTS)}
)
BatchOut = inline_serializer(
    "BatchEventsOut",
    {
        "stored": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "refused": serializers.IntegerField(),
        "results": serializers.ListField(
            child=inline_serializer(
                "BatchEventResult",
                {
                    "index": serializers.IntegerField(),
                    "event_id": serializers.CharField(allow_blank=True),
                    "status": serializers.ChoiceField(choices=["stored", "duplicate", "refused"]),
                    "reason": serializers.CharField(required=False),
                },
            )
        ),
    },
)


def _parse_time(value: Any) -> datetime | str:
    if not isinstance(value, str):
        return "occurred_at is required: an ISO 8601 time with its zone, e.g. 2026-05-01T09:30:00Z."
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return "occurred_at must be an ISO 8601 time with its zone, e.g. 2026-05-01T09:30:00Z."
    if at.tzinfo is None:
        return "occurred_at needs a time zone, e.g. 2026-05-01T09:30:00Z."
    return at


KIND_BY_SLUG = {k.slug: int(k) for k in InteractionKind}


class BatchEventsView(APIView):
    permission_classes = [IsAuthenticated, CanIngestEvents]
    throttle_classes = [BatchThrottle]

    @extend_schema(
        request=BatchIn,
        responses=BatchOut,
        summary="Record up to 1,000 events; each answered stored, duplicate or refused",
        tags=["events"],
    )
    def post(self, request: Request) -> Response:
        body = request.data
        raw = body.get("events") if isinstance(body, dict) else None
        if not isinstance(raw, list):
            raise DRFValidationError({"events": 'Send {"events": [...]} with 1 to 1,000 events.'})
        if not 0 < len(raw) <= crm.MAX_BULK_EVENTS:
            raise DRFValidationError({"events": f"Send 1 to {crm.MAX_BULK_EVENTS} events per request."})
        now = timezone.now()
        refused: dict[int, str] = {}
        ids: list[str] = []
        parsed: list[tuple[int, Any, int, datetime, str, dict]] = []  # index, who, kind, at, id, payload
        emails: set[str] = set()
        for i, event in enumerate(raw):
            event_id = event.get("event_id") if isinstance(event, dict) else None
            ids.append(event_id if isinstance(event_id, str) else "")
            if not isinstance(event, dict):
                refused[i] = "Each event must be an object."
                continue
            lead_id, email = event.get("lead_id"), event.get("email")
            if (lead_id is None) == (email is None):
                refused[i] = "Give lead_id or email (one of them)."
                continue
            if lead_id is not None and (isinstance(lead_id, bool) or not isinstance(lead_id, int)):
                refused[i] = "lead_id must be a whole number."
                continue
            if email is not None and (not isinstance(email, str) or not 0 < len(email) <= 254):
                refused[i] = "email must be text of at most 254 characters."
                continue
            kind_slug = event.get("kind")
            kind = KIND_BY_SLUG.get(kind_slug) if isinstance(kind_slug, str) else None
            if kind is None:
                if not isinstance(kind_slug, str):
                    refused[i] = "kind is required, e.g. page_view."
                    continue
                try:
                    kind = int(InteractionKind.from_slug(kind_slug))  # any case; names the valid kinds
                except ValueError as exc:
                    refused[i] = str(exc)
                    continue
            at = _parse_time(event.get("occurred_at"))
            if isinstance(at, str):
                refused[i] = at
                continue
            payload = event.get("payload", {})
            who: Any = lead_id if lead_id is not None else email.strip().lower()  # type: ignore[union-attr]
            if isinstance(who, str):
                emails.add(who)
            parsed.append((i, who, kind, at, ids[i], payload))
        by_email = dict(Lead.objects.filter(email__in=emails).values_list("email", "pk") if emails else [])
        bulk: list[crm.BulkEvent] = []
        index_of: list[int] = []
        for i, who, kind, at, event_id, payload in parsed:
            lead_pk = who if isinstance(who, int) else by_email.get(who)
            if lead_pk is None:
                refused[i] = "No lead has this email."
                continue
            bulk.append(
                crm.BulkEvent(
                    lead_id=lead_pk, kind=kind, occurred_at=at, client_event_id=event_id, payload=payload
                )
            )
            index_of.append(i)
        result = crm.record_interactions_bulk(events=bulk, now=now)
        status_of: dict[int, str] = {}
        for j in result.stored:
            status_of[index_of[j]] = "stored"
        for j in result.duplicates:
            status_of[index_of[j]] = "duplicate"
        for j, reason in result.refused.items():
            refused[index_of[j]] = reason
        results = []
        for i in range(len(raw)):
            row: dict[str, Any] = {"index": i, "event_id": ids[i], "status": status_of.get(i, "refused")}
            if i in refused:
                row["reason"] = refused[i]
            results.append(row)
        return Response(
            {
                "stored": len(result.stored),
                "duplicates": len(result.duplicates),
                "refused": len(refused),
                "results": results,
            }
        )
