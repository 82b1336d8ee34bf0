"""POST /api/v1/email/inbound: a reply to an email LeadCRM sent, posted by your mail provider's
inbound hook or by the forwarding-address relay (docs/email.md).

Authenticated by a shared secret (EMAIL_INBOUND_SECRET) in the `X-LeadCRM-Inbound-Secret`
header, compared in constant time; no session or token login (so no CSRF either). Without the
setting the endpoint refuses everything. The reply is matched only by the signed token LeadCRM put
in the Message-ID / Reply-To address, never by an address or id the sender chose.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from leadcrm.models import json_problem
from outreach import services

SECRET_HEADER = "X-LeadCRM-Inbound-Secret"


class InboundIpThrottle(SimpleRateThrottle):
    """Inbound posts per client address, per minute (email_inbound)."""

    scope = "email_inbound"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class InboundEmailSerializer(serializers.Serializer):
    locals()["from"] = serializers.CharField(
        max_length=500, help_text='The sender, "Name <address>" or an address.'
    )
    to = serializers.CharField(
        max_length=2000,
        allow_blank=True,
        default="",
        help_text="Recipient(s); a plus-address carries the token.",
    )
    subject = serializers.CharField(max_length=1000, allow_blank=True, default="")
    text = serializers.CharField(max_length=200_000, allow_blank=True, default="", trim_whitespace=False)
    in_reply_to = serializers.CharField(max_length=2000, allow_blank=True, default="")
    references = serializers.CharField(max_length=10_000, allow_blank=True, default="")
    message_id = serializers.CharField(
        max_length=1000,
        allow_blank=True,
        default="",
        help_text="The reply's own Message-ID: posted twice, recorded once.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        problem = json_problem(list(attrs.values()))
        if problem:
            raise DRFValidationError({"non_field_errors": [problem]})
        return attrs


class InboundResultSerializer(serializers.Serializer):
    recorded = serializers.BooleanField(help_text="False: this Message-ID was recorded before.")
    interaction_id = serializers.IntegerField()
    lead_id = serializers.IntegerField()


class InboundEmailView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [InboundIpThrottle]

    @extend_schema(
        summary="Record a reply to an email sent from LeadCRM",
        request=InboundEmailSerializer,
        parameters=[OpenApiParameter(SECRET_HEADER, str, OpenApiParameter.HEADER, required=True)],
        responses={201: InboundResultSerializer, 200: InboundResultSerializer},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        expected = settings.EMAIL_INBOUND_SECRET
        given = request.headers.get(SECRET_HEADER, "")
        if not expected:
            raise PermissionDenied("Inbound email is not configured on this server (EMAIL_INBOUND_SECRET).")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise PermissionDenied(f"Send the shared secret in the {SECRET_HEADER} header.")
        serializer = InboundEmailSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            interaction, new = services.record_reply(
                sender=data["from"],
                to=data["to"],
                subject=data["subject"],
                text=data["text"],
                in_reply_to=data["in_reply_to"],
                references=data["references"],
                message_id=data["message_id"],
            )
        except services.NoMatch as exc:
            raise DRFValidationError({"in_reply_to": [str(exc)]}) from None
        except ValidationError as exc:
            raise DRFValidationError(
                exc.message_dict if hasattr(exc, "error_dict") else exc.messages
            ) from None
        body = {"recorded": new, "interaction_id": interaction.pk, "lead_id": interaction.lead_id}
        return Response(body, status=status.HTTP_201_CREATED if new else status.HTTP_200_OK)
