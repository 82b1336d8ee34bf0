"""The widget's "What do you know about me?": an identified visitor downloads their data or asks
to be erased (under /api/v1/chat/sites/<key>/me/…).

The visitor proves who they are with their conversation's token (chatbot.api.PublicChatView's
`conversation()`); only a conversation whose lead has an email, or whose identity the business's
site signed, may see anything. A bare visitor (no email, no verified identity) gets 403: a
visitor id or a typed name proves nothing. Erasure from the widget is a request a manager acts on.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from chatbot.api import WRITES, PublicChatView
from leadcrm.models import Lead
from privacy import services

NOT_IDENTIFIED = (
    "We can only show or erase data for a visitor we know: leave your email in the chat first "
    "(or log in on the website), then ask again."
)


class _AnyFormat(PublicChatView):
    # `?format=csv` is this endpoint's own parameter, not DRF's renderer switch: errors are JSON.
    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[BaseRenderer, str]:
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    def identified_lead(self) -> Lead:
        conversation = self.conversation()
        lead = conversation.lead
        if lead is None or not services.is_identified(lead, identity_verified=conversation.identity_verified):
            raise PermissionDenied(NOT_IDENTIFIED)
        return lead


class MyDataView(_AnyFormat):
    """Everything the business holds about this identified visitor: JSON, or `?format=csv` (one row
    per value: record, record_id, field, value). Each download is written to the audit trail."""

    throttle_classes = WRITES  # an export is heavy: limited like a write

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=list(services.EXPORT_FORMATS), default="json")],
        responses={
            (200, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT, description="Everything held about the visitor"
            ),
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="The same as one long CSV: record, record_id, field, value"
            ),
            (400, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="Unknown format"),
            (403, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT, description="Not an identified visitor"
            ),
        },
        summary="Download what we know about me",
        tags=["chat widget"],
    )
    def get(self, request: Request, key: str) -> HttpResponse:
        fmt = request.query_params.get("format", "json")
        if fmt not in services.EXPORT_FORMATS:
            raise DRFValidationError({"format": ["Use json or csv."]})
        lead = self.identified_lead()
        try:
            body, content_type = services.export_person(lead=lead, fmt=fmt, by=None, channel="website chat")
        except ValidationError as exc:
            raise DRFValidationError({"non_field_errors": exc.messages}) from None
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{services.export_filename(lead, fmt)}"'
        response["Cache-Control"] = "no-store"
        return response


class ErasureOut(serializers.Serializer):
    status = serializers.CharField()
    requested_at = serializers.DateTimeField()
    message = serializers.CharField()


class MyErasureView(_AnyFormat):
    """Ask to be erased: recorded as a request that a manager sees on /privacy/requests/ and acts
    on (201; 200 when one is already waiting). Nothing is erased by the visitor's click alone."""

    throttle_classes = WRITES

    @extend_schema(
        request=None,
        responses={
            201: ErasureOut,
            200: OpenApiResponse(ErasureOut, description="Already requested; still waiting"),
            403: OpenApiResponse(OpenApiTypes.OBJECT, description="Not an identified visitor"),
        },
        summary="Ask the business to erase my data",
        tags=["chat widget"],
    )
    def post(self, request: Request, key: str) -> Response:
        lead = self.identified_lead()
        privacy_request, created = services.request_erasure(lead=lead)
        body: dict[str, Any] = {
            "status": privacy_request.status,
            "requested_at": privacy_request.created_at.isoformat(),
            "message": "Thanks: we have your request and will erase your data. You do not need to ask again.",
        }
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
