"""The public chat-widget API (under /api/v1/chat/): thin DRF views over chatbot.services.

Every request names the site in its path (`sites/<key>/…`) so that even a CORS preflight can be
checked against the site's allowed origins. The conversation token is the visitor's credential
for their own conversation. No session or token authentication: these endpoints are public, and
guarded by the site key, the Origin, rate limits and input limits instead.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from chatbot import email_codes, realtime, services, waits
from chatbot.models import Conversation, Site

# --- Throttles ------------------------------------------------------------------------------------

# Django keeps a cache client per thread, and under ASGI every request runs in a new thread: via
# `django.core.cache.cache` each request built a new Redis client and opened a new connection just
# to count itself. The chat throttles share one client per process (its connection pool is
# thread-safe); it is the same default cache (same server and keys), so limits are unchanged.
THROTTLE_CACHE = caches.create_connection("default")

TOKEN_HEADER = "X-Chat-Token"


class ChatThrottle(SimpleRateThrottle):
    """A chat limit: `scope` names its rate in DEFAULT_THROTTLE_RATES; `ident` what it counts by.

    Nothing a client chooses freely is ever the key: IPs come from the socket (or from
    X-Forwarded-For behind TRUSTED_PROXIES proxies), sites from the checked key + Origin, and
    conversations from the token the server issued."""

    cache = THROTTLE_CACHE

    def ident(self, request: Request, view: Any) -> str:
        return self.get_ident(request)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.ident(request, view)}


class ChatIpThrottle(ChatThrottle):
    """Every widget request, per client IP, per minute (chat_ip)."""

    scope = "chat_ip"


class ChatIpHourThrottle(ChatThrottle):
    scope = "chat_ip_hour"


class _PerSite(ChatThrottle):
    def ident(self, request: Request, view: Any) -> str:
        return f"site{view.site.pk}"


class ChatSiteThrottle(_PerSite):
    """Every widget request, per site, per minute (chat_site): one site's flood stays its own."""

    scope = "chat_site"


class ChatSiteHourThrottle(_PerSite):
    scope = "chat_site_hour"


class ChatStartIpThrottle(ChatThrottle):
    """New conversations per client IP (chat_start_ip); never keyed by the browser's visitor id."""

    scope = "chat_start_ip"


class ChatStartIpHourThrottle(ChatThrottle):
    scope = "chat_start_ip_hour"


class ChatStartSiteThrottle(_PerSite):
    """New conversations per site (chat_start_site)."""

    scope = "chat_start_site"


class ChatStartSiteHourThrottle(_PerSite):
    scope = "chat_start_site_hour"


class _PerConversation(ChatThrottle):
    def ident(self, request: Request, view: Any) -> str:
        token = view.chat_token
        return "c" + hashlib.sha256(token.encode()).hexdigest()[:32] if token else self.get_ident(request)


class ChatConversationThrottle(_PerConversation):
    """Writes per conversation (its server-issued token; the IP without one), per minute (chat_visitor)."""

    scope = "chat_visitor"


class ChatConversationHourThrottle(_PerConversation):
    scope = "chat_visitor_hour"


ChatVisitorThrottle = ChatConversationThrottle  # its earlier name (now keyed by the issued token)


class ChatCodeConversationThrottle(_PerConversation):
    """One-time email codes asked for per conversation, per hour (chat_code_conversation)."""

    scope = "chat_code_conversation"


class ChatCodeIpThrottle(ChatThrottle):
    """One-time email codes asked for per client IP, per hour (chat_code_ip)."""

    scope = "chat_code_ip"


class ChatCodeSiteThrottle(_PerSite):
    """One-time email codes asked for per site, per hour (chat_code_site)."""

    scope = "chat_code_site"


class _PerEmail(ChatThrottle):
    def get_cache_key(self, request: Request, view: Any) -> str | None:
        email = view.typed_email()
        if not email:
            return None  # no address, no code: the request is refused as bad input
        return self.cache_format % {"scope": self.scope, "ident": "e" + email_codes.email_hash(email)[:32]}


class ChatCodeEmailThrottle(_PerEmail):
    """One-time email codes asked for per address, whatever the chat, IP or site, per hour
    (chat_code_email): bounds the emails anyone can make a mailbox receive. Keyed by the address's
    keyed hash, never the address."""

    scope = "chat_code_email"


class ChatCodeEmailDayThrottle(_PerEmail):
    """The same per day (chat_code_email_day): with 5 tries per code, it bounds the guesses at one
    address's codes to a few dozen a day out of a million codes, from any number of IPs."""

    scope = "chat_code_email_day"


class ChatCodeConfirmThrottle(_PerConversation):
    """Tries at a one-time code per conversation, per hour (chat_code_confirm)."""

    scope = "chat_code_confirm"


class ChatPromiseIpThrottle(ChatThrottle):
    """Callbacks and email follow-ups asked for per client IP, per hour (chat_promise_ip): each is a
    task for a salesperson, so one visitor opening chat after chat cannot flood the team's list."""

    scope = "chat_promise_ip"


EVERY_REQUEST = [ChatIpThrottle, ChatIpHourThrottle, ChatSiteThrottle, ChatSiteHourThrottle]
WRITES = [*EVERY_REQUEST, ChatConversationThrottle, ChatConversationHourThrottle]
# The address's own quota comes last: see EmailCodeBase.check_throttles.
CODE_REQUESTS = [
    *WRITES,
    ChatCodeConversationThrottle,
    ChatCodeIpThrottle,
    ChatCodeSiteThrottle,
    ChatCodeEmailThrottle,
    ChatCodeEmailDayThrottle,
]
CODE_CONFIRMS = [*WRITES, ChatCodeConfirmThrottle]
NEW_CONVERSATION = [
    *EVERY_REQUEST,
    ChatStartIpThrottle,
    ChatStartIpHourThrottle,
    ChatStartSiteThrottle,
    ChatStartSiteHourThrottle,
]


# --- Base view ------------------------------------------------------------------------------------


def request_origin(request: HttpRequest) -> str:
    """The Origin header, else the origin part of the Referer (same-origin GETs send no Origin)."""
    origin = request.headers.get("Origin", "")
    if origin and origin != "null":
        return origin
    referer = request.headers.get("Referer", "")
    if referer:
        parts = urlsplit(referer)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    return ""


def _bad_input(exc: ValidationError) -> DRFValidationError:
    return DRFValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})


# Under ASGI every concurrent request gets its own thread and database connection. A burst of
# visitors must queue here rather than exhaust the database's connections and fail with 500s.
CHAT_DB_SLOTS = threading.BoundedSemaphore(8)


_sites: dict[str, tuple[float, Site | None]] = {}
SITE_CACHE_SECONDS = 5.0


def cached_site(key: str) -> Site | None:
    """The site for a public key, cached per process for a few seconds (every widget call needs it)."""
    hit = _sites.get(key)
    if hit is not None and time.monotonic() - hit[0] < SITE_CACHE_SECONDS:
        return hit[1]
    site = Site.objects.filter(public_key=key).first() if key else None
    if len(_sites) > 10_000:  # unknown keys must not grow this without bound
        _sites.clear()
    _sites[key] = (time.monotonic(), site)
    return site


class PublicChatView(APIView):
    """Base of every public widget endpoint: site key + Origin checked, CORS, limits, and the
    visitor's conversation from the X-Chat-Token header (`conversation()`)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = EVERY_REQUEST
    site: Site
    origin: str
    chat_token: str = ""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self.origin = request_origin(request)
        self.chat_token = request.headers.get(TOKEN_HEADER, "").strip()[:64]
        site = cached_site(str(kwargs.get("key", "")))
        if site is None or not site.allows_origin(self.origin):
            raise PermissionDenied("Unknown site key, or this website (Origin) is not allowed to use it.")
        self.site = site
        super().initial(request, *args, **kwargs)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        with CHAT_DB_SLOTS:
            try:
                return super().dispatch(request, *args, **kwargs)
            finally:
                if settings.DATABASES["default"].get("CONN_MAX_AGE") == 0 and not connection.in_atomic_block:
                    # Give the connection back inside the slot, so slots bound open connections.
                    connection.close()

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        site = getattr(self, "site", None)
        if site is not None and self.origin:
            response["Access-Control-Allow-Origin"] = self.origin
            response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response["Access-Control-Allow-Headers"] = f"Content-Type, {TOKEN_HEADER}"
            response["Access-Control-Expose-Headers"] = "Content-Disposition, Retry-After"
            response["Access-Control-Max-Age"] = "600"
        response["Vary"] = "Origin"
        return response

    @extend_schema(exclude=True)
    # DRF hands handlers its Request; its stubs ignore the same override of View.options.
    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        """CORS preflight: 204 for allowed origins (headers added in finalize_response), 403 otherwise."""
        return Response(status=status.HTTP_204_NO_CONTENT)

    def conversation(self) -> Conversation:
        """The conversation whose server-issued token came in the X-Chat-Token header (compared in
        constant time): 403 without the header, 404 for a token this site never issued."""
        if not self.chat_token:
            raise PermissionDenied(f"Send the conversation's token in the {TOKEN_HEADER} header.")
        conversation = services.conversation_by_token(site=self.site, token=self.chat_token)
        if conversation is None:
            raise NotFound("No such conversation on this site; start a new one.")
        return conversation

    def valid(self, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


# --- Serializers ----------------------------------------------------------------------------------


class ActionSerializer(serializers.Serializer):
    type = serializers.CharField()
    # The metaclass moves declared fields off the class; the stubs see Field.label (a str).
    label = serializers.CharField()  # type: ignore[assignment]


class MessageOut(serializers.Serializer):
    id = serializers.IntegerField()
    # "from" is a Python keyword, so the field is declared by name below.
    text = serializers.CharField(help_text="Plain text. Render it as text, never as HTML.")
    at = serializers.DateTimeField()
    actions = serializers.ListField(child=serializers.DictField())
    agent = serializers.CharField(allow_blank=True)
    faq = serializers.IntegerField(allow_null=True)
    helpful = serializers.BooleanField(allow_null=True)


MessageOut._declared_fields["from"] = serializers.ChoiceField(choices=["visitor", "bot", "agent"])


class MessagesOut(serializers.Serializer):
    status = serializers.CharField()
    messages = MessageOut(many=True)


class PageIn(serializers.Serializer):
    url = serializers.CharField(max_length=500)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class ProactiveOut(serializers.Serializer):
    text = serializers.CharField()
    url_contains = serializers.CharField(allow_blank=True)
    delay_seconds = serializers.IntegerField()


class ConfigOut(serializers.Serializer):
    name = serializers.CharField()
    brand_color = serializers.CharField()
    privacy_url = serializers.CharField(allow_blank=True)
    privacy_text = serializers.CharField(allow_blank=True)
    consent_text = serializers.CharField(help_text="Contact consent wording, shown word for word.")
    marketing_consent_text = serializers.CharField()
    consent_version = serializers.CharField(help_text="Send it back with identify.")
    open_now = serializers.BooleanField()
    live_agents = serializers.BooleanField(
        help_text="A person can answer live now (open, and someone on duty): header 'Online', else "
        "'We reply by email', and 'Talk to a person' becomes 'Leave a message / request a callback'."
    )
    usual_wait = serializers.CharField(
        allow_blank=True,
        help_text="How fast the team usually answers a hand-off, e.g. 'in about 2 minutes'; blank "
        "when there are too few recent hand-offs to say (or nobody is on duty).",
    )
    callback_offer_after_s = serializers.IntegerField(
        help_text="Seconds of waiting for a person after which the widget offers a callback or email."
    )
    max_message_chars = serializers.IntegerField()
    proactive = ProactiveOut(many=True)


class StartIn(serializers.Serializer):
    visitor_id = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    page_url = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    page_title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    language = serializers.CharField(max_length=35, required=False, allow_blank=True, default="")
    timezone = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    trail = PageIn(many=True, required=False, default=list)
    identity_email = serializers.CharField(max_length=254, required=False, allow_blank=True, default="")
    identity_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    identity_signature = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")


class StartOut(MessagesOut):
    token = serializers.CharField(
        help_text="The visitor's credential for this conversation: send it in the X-Chat-Token header."
    )
    visitor_id = serializers.CharField()
    resumed = serializers.BooleanField()
    identity_verified = serializers.BooleanField()
    identified = serializers.BooleanField(help_text="May ask what we know about them, or for erasure.")
    open_now = serializers.BooleanField()


class MessageIn(serializers.Serializer):
    text = serializers.CharField(max_length=services.MAX_MESSAGE_CHARS, trim_whitespace=True)
    client_id = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")


class IdentifyIn(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    email = serializers.CharField(max_length=254, required=False, allow_blank=True, default="")
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    contact_consent = serializers.BooleanField(default=False)
    marketing_consent = serializers.BooleanField(default=False)
    consent_version = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")


class EmailCodeIn(serializers.Serializer):
    email = serializers.CharField(max_length=254, help_text="The address to send the code to.")


class EmailCodeOut(serializers.Serializer):
    detail = serializers.CharField(help_text="The same sentence whether or not we know the address.")
    expires_in = serializers.IntegerField(help_text="Seconds the code works for.")


class EmailCodeConfirmIn(serializers.Serializer):
    email = serializers.CharField(max_length=254, help_text="The address the code was sent to.")
    code = serializers.CharField(max_length=20, help_text="The 6 digits from the email.")


class VerifiedOut(MessagesOut):
    identified = serializers.BooleanField()
    identity_verified = serializers.BooleanField()


class FeedbackIn(serializers.Serializer):
    message_id = serializers.IntegerField()
    helpful = serializers.BooleanField()


class FollowUpIn(serializers.Serializer):
    via = serializers.ChoiceField(choices=["phone", "email"], help_text="Call me back, or email me.")


class CallbackIn(serializers.Serializer):
    due_at = serializers.DateTimeField()
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class CloseIn(serializers.Serializer):
    rating = serializers.IntegerField(min_value=1, max_value=5, required=False, allow_null=True, default=None)
    comment = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


TOKEN_PARAMETER = OpenApiParameter(
    TOKEN_HEADER,
    str,
    location=OpenApiParameter.HEADER,
    required=True,
    description="The conversation's token from the start response (never put it in a URL).",
)
TOKEN_PARAMETER_OPTIONAL = OpenApiParameter(
    TOKEN_HEADER,
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="The token of the open conversation to resume, or of the visitor's last one.",
)

OkOut = inline_serializer("ChatOk", {"ok": serializers.BooleanField()})


def _messages_response(conversation: Conversation, messages: list, **extra: Any) -> Response:
    return Response(
        {"status": conversation.status, "messages": [realtime.message_json(m) for m in messages], **extra}
    )


# --- Views ----------------------------------------------------------------------------------------


class ConfigView(PublicChatView):
    @extend_schema(responses=ConfigOut, summary="Widget configuration for a site", tags=["chat widget"])
    def get(self, request: Request, key: str) -> Response:
        # Segment-only proactive messages need the visitor's lead: known only from a conversation
        # token this server issued (X-Chat-Token), never from an id the browser makes up.
        earlier = services.conversation_by_token(site=self.site, token=self.chat_token)
        lead = earlier.lead if earlier is not None and earlier.lead_created else None
        now = timezone.now()
        live = waits.live_agents(self.site, now=now)
        return Response(
            {
                "name": self.site.name,
                "brand_color": self.site.brand_color,
                "privacy_url": self.site.privacy_url,
                "privacy_text": self.site.privacy_text,
                "consent_text": self.site.consent_wording("contact"),
                "marketing_consent_text": self.site.consent_wording("marketing"),
                "consent_version": self.site.consent_version,
                "open_now": self.site.is_open(now),
                "live_agents": live,
                "usual_wait": waits.usual_wait(self.site, now=now).phrase if live else "",
                "callback_offer_after_s": self.site.callback_offer_after_s,
                "max_message_chars": services.MAX_MESSAGE_CHARS,
                "proactive": services.proactive_for(self.site, lead=lead),
            }
        )


class StartView(PublicChatView):
    def get_throttles(self) -> list:
        # Resuming the open conversation whose token the widget holds is not a new conversation.
        resuming = services.open_conversation(site=self.site, token=self.chat_token) is not None
        return [throttle() for throttle in (EVERY_REQUEST if resuming else NEW_CONVERSATION)]

    @extend_schema(
        request=StartIn,
        responses=StartOut,
        parameters=[TOKEN_PARAMETER_OPTIONAL],
        summary="Start a conversation, or resume the open one whose token is sent",
        tags=["chat widget"],
    )
    def post(self, request: Request, key: str) -> Response:
        data = self.valid(StartIn)
        now = timezone.now()
        try:
            conversation, created = services.start_conversation(
                site=self.site,
                visitor_id=data["visitor_id"],
                token=self.chat_token,
                page_url=data["page_url"],
                page_title=data["page_title"],
                language=data["language"],
                tz=data["timezone"],
                trail=data["trail"],
                identity_email=data["identity_email"],
                identity_name=data["identity_name"],
                identity_signature=data["identity_signature"],
                now=now,
            )
        except ValidationError as exc:
            raise _bad_input(exc) from None
        messages = list(conversation.messages.select_related("agent").order_by("-id")[:50])[::-1]
        return _messages_response(
            conversation,
            messages,
            token=conversation.token,
            visitor_id=conversation.visitor_id,
            resumed=not created,
            identity_verified=conversation.identity_verified,
            identified=services.is_identified(conversation),
            open_now=self.site.is_open(now),
        )


class MessagesView(PublicChatView):
    def get_throttles(self) -> list:
        return [throttle() for throttle in (WRITES if self.request.method == "POST" else EVERY_REQUEST)]

    @extend_schema(
        parameters=[
            TOKEN_PARAMETER,
            OpenApiParameter("after", int, description="Only messages with a larger id (resync)."),
        ],
        responses=MessagesOut,
        summary="Messages of the conversation (after a reload or reconnect)",
        tags=["chat widget"],
    )
    def get(self, request: Request, key: str) -> Response:
        conversation = self.conversation()
        try:
            after = int(request.query_params.get("after", 0))
        except ValueError:
            raise DRFValidationError({"after": "Give a message id (a whole number)."}) from None
        messages = list(conversation.messages.filter(id__gt=after).select_related("agent")[:200])
        return _messages_response(
            conversation,
            messages,
            identified=services.is_identified(conversation),
            identity_verified=conversation.identity_verified,
        )

    @extend_schema(
        request=MessageIn,
        responses=MessagesOut,
        parameters=[TOKEN_PARAMETER],
        summary="Send a visitor message",
        tags=["chat widget"],
    )
    def post(self, request: Request, key: str) -> Response:
        started = time.perf_counter()
        data = self.valid(MessageIn)
        if not self.chat_token:
            raise PermissionDenied(f"Send the conversation's token in the {TOKEN_HEADER} header.")
        try:
            messages = services.post_visitor_message(
                site=self.site, token=self.chat_token, text=data["text"], client_id=data["client_id"]
            )
        except Conversation.DoesNotExist:
            raise NotFound("No such conversation on this site; start a new one.") from None
        except ValidationError as exc:
            raise _bad_input(exc) from None
        conversation = messages[0].conversation
        # The service worked on a locked, fresh copy of the conversation: its status is current.
        response = _messages_response(conversation, messages)
        # Server-side time from request to bot reply, for bench_chat and browser devtools.
        response["Server-Timing"] = f"bot;dur={(time.perf_counter() - started) * 1000:.2f}"
        return response


class IdentifyView(PublicChatView):
    throttle_classes = WRITES

    @extend_schema(
        request=IdentifyIn,
        responses=MessagesOut,
        parameters=[TOKEN_PARAMETER],
        summary="Visitor gives name/email with consent",
        tags=["chat widget"],
    )
    def post(self, request: Request, key: str) -> Response:
        data = self.valid(IdentifyIn)
        conversation = self.conversation()
        try:
            services.identify_visitor(conversation=conversation, **data)
        except ValidationError as exc:
            raise _bad_input(exc) from None
        conversation = services.conversation_by_token(site=self.site, token=self.chat_token) or conversation
        return _messages_response(
            conversation,
            list(conversation.messages.order_by("-id")[:1]),
            identified=services.is_identified(conversation),
        )


class EmailCodeBase(PublicChatView):
    """The one-time email code endpoints: the address typed (for its limit) and limits in order."""

    def typed_email(self) -> str:
        data = self.request.data
        value = data.get("email") if isinstance(data, Mapping) else None
        return email_codes.normalise_email(value)[:254] if isinstance(value, str) else ""

    def check_throttles(self, request: Request) -> None:
        # Stop at the first limit reached: a request another limit refuses (an attacker's IP, chat
        # or site quota) does not use up the address's own quota, so it cannot lock its owner out.
        for throttle in self.get_throttles():
            if not throttle.allow_request(request, self):
                self.throttled(request, throttle.wait() or 0.0)


class EmailCodeView(EmailCodeBase):
    throttle_classes = CODE_REQUESTS

    @extend_schema(
        request=EmailCodeIn,
        responses=EmailCodeOut,
        parameters=[TOKEN_PARAMETER],
        summary="Email me a one-time code to prove this address is mine",
        description="The answer is the same whether or not any lead has the address. Limited per "
        "conversation, address, client IP and site (429 with Retry-After).",
        tags=["chat widget"],
    )
    def post(self, request: Request, key: str) -> Response:
        data = self.valid(EmailCodeIn)
        conversation = self.conversation()
        try:
            email_codes.request_code(conversation=conversation, email=data["email"])
        except ValidationError as exc:
            raise _bad_input(exc) from None
        seconds = int(email_codes.code_lifetime().total_seconds())
        return Response({"detail": email_codes.request_answer(), "expires_in": seconds})


class EmailCodeConfirmView(EmailCodeBase):
    throttle_classes = CODE_CONFIRMS

    @extend_schema(
        request=EmailCodeConfirmIn,
        responses=VerifiedOut,
        parameters=[TOKEN_PARAMETER],
        summary="Confirm the address with the code from the email",
        description="On success the chat is verified and belongs to the lead with that address. "
        "A code works once, for CHAT_EMAIL_CODE_MINUTES, and 5 wrong tries void it (400).",
        tags=["chat widget"],
    )
    def post(self, request: Request, key: str) -> Response:
        data = self.valid(EmailCodeConfirmIn)
        conversation = self.conversation()
        try:
            email_codes.confirm_code(conversation=conversation, email=data["email"], code=data["code"])
        except ValidationError as exc:
            raise _bad_input(exc) from None
        conversation = services.conversation_by_token(site=self.site, token=self.chat_token) or conversation
        return _messages_response(
            conversation,
            list(conversation.messages.order_by("-id")[:1]),
            identified=services.is_identified(conversation),
            identity_verified=conversation.identity_verified,
        )


class HandoffView(PublicChatView):
    throttle_classes = WRITES

    @extend_schema(
        request=None,
        responses=MessagesOut,
        parameters=[TOKEN_PARAMETER],
        summary="Ask for a person",
        tags=["chat widget"],
    )
    def post(self, request: Request, key: str) -> Response:
        conversation = self.conversation()
        messages = services.request_handoff(conversation=conversation)
        conversation.refresh_from_db(fields=["status"])
        return _messages_response(conversation, messages)


class PageViewView(PublicChatView):
    throttle_classes = WRITES

    @extend_schema(
        request=PageIn,
        responses=OkOut,
        parameters=[TOKEN_PARAMETER],
        summary="Report the page the visitor is on",
        tags=["chat widget"],
    )
    def post(self, request: Request, key: str) -> Response:
        data = self.valid(PageIn)
        try:
            services.record_page_view(conversation=self.conversation(), url=data["url"], title=data["title"])
        except ValidationError as exc:
            raise _bad_input(exc) from None
        return Response({"ok": True})


class HeartbeatView(PublicChatView):
    @extend_schema(
        request=None,
        responses=OkOut,
        parameters=[TOKEN_PARAMETER],
        summary="Widget still open (keeps 'live now')",
        tags=["chat widget"],
    )
    def post(self, request: Request, key: str) -> Response:
        services.heartbeat(conversation=self.conversation())
        return Response({"ok": True})


class FeedbackView(PublicChatView):
    throttle_classes = WRITES

    @extend_schema(
        request=FeedbackIn,
        responses=MessagesOut,
        parameters=[TOKEN_PARAMETER],
        summary="'Did that help?' on a bot answer",
        tags=["chat widget"],
    )
    def post(self, request: Request, key: str) -> Response:
        data = self.valid(FeedbackIn)
        conversation = self.conversation()
        try:
            messages = services.record_feedback(
                conversation=conversation, message_id=data["message_id"], helpful=data["helpful"]
            )
        except ValidationError as exc:
            raise _bad_input(exc) from None
        return _messages_response(conversation, messages)


class CallbackView(PublicChatView):
    throttle_classes = [*WRITES, ChatPromiseIpThrottle]

    @extend_schema(
        request=CallbackIn,
        responses=MessagesOut,
        parameters=[TOKEN_PARAMETER],
        summary="Book a callback (out of hours)",
        tags=["chat widget"],
    )
    def post(self, request: Request, key: str) -> Response:
        data = self.valid(CallbackIn)
        conversation = self.conversation()
        try:
            services.schedule_callback(conversation=conversation, due_at=data["due_at"], note=data["note"])
        except ValidationError as exc:
            raise _bad_input(exc) from None
        return _messages_response(conversation, list(conversation.messages.order_by("-id")[:1]))


class FollowUpView(PublicChatView):
    throttle_classes = [*WRITES, ChatPromiseIpThrottle]

    @extend_schema(
        request=FollowUpIn,
        responses=MessagesOut,
        parameters=[TOKEN_PARAMETER],
        summary="Rather than wait: ask for a callback or an email follow-up",
        description="Due now while the site is open, else at its next opening (the server picks the "
        "time). Needs the visitor's contact details and consent (400 otherwise). One open chat "
        "promise per lead: asking again moves it; limited per conversation and per client IP (429).",
        tags=["chat widget"],
    )
    def post(self, request: Request, key: str) -> Response:
        data = self.valid(FollowUpIn)
        conversation = self.conversation()
        try:
            services.request_follow_up(conversation=conversation, via=data["via"])
        except ValidationError as exc:
            raise _bad_input(exc) from None
        return _messages_response(conversation, list(conversation.messages.order_by("-id")[:1]))


class CloseView(PublicChatView):
    throttle_classes = WRITES

    @extend_schema(
        request=CloseIn,
        responses=OkOut,
        parameters=[TOKEN_PARAMETER],
        summary="End the chat, with an optional 1–5 rating",
        tags=["chat widget"],
    )
    def post(self, request: Request, key: str) -> Response:
        data = self.valid(CloseIn)
        try:
            services.close_conversation(
                conversation=self.conversation(), rating=data["rating"], comment=data["comment"]
            )
        except ValidationError as exc:
            raise _bad_input(exc) from None
        return Response({"ok": True})
