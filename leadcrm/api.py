"""REST API v1 for leads and interactions (DRF views and their serializers).

Views are thin: they parse input, check the role rule in `leadcrm.permissions`, and call a
service. A Django ValidationError from a service becomes a 400 with field errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, timedelta
from typing import Any, cast

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import filters, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, PermissionDenied
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from leadcrm import services, signals
from leadcrm.http import request_user
from leadcrm.models import (
    EARLIEST_INTERACTION,
    EMAIL_UNAVAILABLE,
    KIND_SLUGS,
    MAX_JSON_DEPTH,
    SCORE_FIELDS,
    Channel,
    ConsentSource,
    Interaction,
    InteractionKind,
    Lead,
    LeadSource,
    LeadStatus,
    json_problem,
    nests_deeper,
)
from leadcrm.permissions import IsStaffRole, can_change_lead, is_manager

User = get_user_model()


def as_api_error(exc: DjangoValidationError) -> ApiValidationError:
    """Django's ValidationError (from full_clean or a service) as DRF's 400 with field errors."""
    if hasattr(exc, "error_dict"):
        return ApiValidationError(
            {field: [str(m) for e in errs for m in e.messages] for field, errs in exc.error_dict.items()}
        )
    return ApiValidationError({"non_field_errors": exc.messages})


class StrictFieldsMixin:
    """Unknown and read-only fields in a request are refused by name, never silently dropped."""

    def to_internal_value(self, data: Any) -> Any:
        fields = cast(serializers.Serializer, self).fields
        if isinstance(data, Mapping):
            writable = {name for name, field in fields.items() if not field.read_only}
            refused = sorted(str(name) for name in data if name not in writable)
            if refused:
                raise ApiValidationError(
                    {
                        name: ["This field is read-only." if name in fields else "Unknown field."]
                        for name in refused
                    }
                )
        return super().to_internal_value(data)  # type: ignore[misc]


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser; a body nested past what Python can read or walk is a 400, not a 500."""

    max_depth = 2 * MAX_JSON_DEPTH

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            data = None  # deeper than the decoder can go
        else:
            if not nests_deeper(data, self.max_depth):
                return data
        raise ParseError(f"JSON parse error - nested more than {self.max_depth} levels deep.")


IDENTITY_FIELDS = ("first_name", "last_name", "email", "phone", "company_name")


def email_refusal(user: Any, other: Lead) -> str:
    """Why an email another lead has is refused. A manager sees every lead and is told which;
    anyone else gets the same words whoever owns it (themselves, nobody or a colleague), no id."""
    return f"Lead #{other.pk} already has this email." if is_manager(user) else EMAIL_UNAVAILABLE


class LeadSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    owner = serializers.PrimaryKeyRelatedField(queryset=User.objects.all(), required=False, allow_null=True)
    display_name = serializers.CharField(read_only=True)
    email = serializers.EmailField(required=False, allow_null=True, allow_blank=True, max_length=254)

    class Meta:
        model = Lead
        fields = (
            "id",
            "display_name",
            "first_name",
            "last_name",
            "email",
            "phone",
            "company_name",
            "industry",
            "employee_count",
            "annual_revenue_band",
            "job_title",
            "country",
            "city",
            "timezone",
            "preferred_language",
            "source",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_term",
            "utm_content",
            "status",
            "status_changed_at",
            "qualified_at",
            "closed_at",
            "lost_reason",
            "owner",
            "marketing_consent",
            "marketing_consent_at",
            "contact_consent",
            "contact_consent_at",
            "custom",
            "last_activity_at",
            "created_at",
            "updated_at",
            *SCORE_FIELDS,
        )
        read_only_fields = (
            "status_changed_at",
            "qualified_at",
            "closed_at",
            "last_activity_at",
            "created_at",
            "updated_at",
            "marketing_consent_at",
            "contact_consent_at",
            *SCORE_FIELDS,
        )

    def validate_email(self, value: str | None) -> str | None:
        email = value.strip().lower() or None if value else None
        taken = Lead.objects.filter(email__iexact=email)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if email and (other := taken.only("pk").first()) is not None:
            raise serializers.ValidationError(email_refusal(self.context["request"].user, other))
        return email

    def validate_custom(self, value: Any) -> dict:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Custom attributes must be an object of name: value pairs.")
        if problem := json_problem(value):
            raise serializers.ValidationError(problem)
        return value

    def validate_owner(self, value: Any) -> Any:
        request = self.context["request"]
        if value is not None and value != request.user and not is_manager(request.user):
            raise serializers.ValidationError("Only a manager can give a lead to someone else.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is None and not any(attrs.get(name) for name in IDENTITY_FIELDS):
            raise ApiValidationError(
                {"non_field_errors": ["Give at least a name, an email, a phone number or a company."]}
            )
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Lead:
        request = self.context["request"]
        if not is_manager(request.user):
            validated_data["owner"] = request.user  # a salesperson's new lead is theirs
        try:
            return services.create_lead(
                **validated_data, consent_source=ConsentSource.API, recorded_by=request_user(request)
            )
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None

    def update(self, instance: Lead, validated_data: dict[str, Any]) -> Lead:
        try:
            services.edit_lead(
                lead=instance,
                changes=validated_data,
                by=request_user(self.context["request"]),
                consent_source=ConsentSource.API,
            )
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None
        return instance


class InteractionSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    kind = serializers.ChoiceField(
        choices=KIND_SLUGS, help_text="Interaction kind, e.g. page_view, email_open."
    )
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    occurred_at = serializers.DateTimeField(required=False)

    class Meta:
        model = Interaction
        fields = (
            "id",
            "lead",
            "kind",
            "channel",
            "occurred_at",
            "payload",
            "sentiment",
            "logged_by",
            "created_at",
        )
        read_only_fields = ("id", "lead", "logged_by", "created_at")

    def to_representation(self, instance: Interaction) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["kind"] = InteractionKind(instance.kind).slug
        return data

    def validate_payload(self, value: Any) -> dict:
        if not isinstance(value, dict):
            raise serializers.ValidationError('Payload must be an object, e.g. {"url": "/pricing"}.')
        if problem := json_problem(value):
            raise serializers.ValidationError(problem)
        return value

    def validate_sentiment(self, value: float | None) -> float | None:
        if value is not None and not -1 <= value <= 1:
            raise serializers.ValidationError("Sentiment runs from -1 to 1.")
        return value

    def validate_occurred_at(self, value: Any) -> Any:
        if value > timezone.now() + timedelta(minutes=5):
            raise serializers.ValidationError("An interaction cannot happen in the future.")
        if value < EARLIEST_INTERACTION:
            raise serializers.ValidationError("An interaction cannot be dated before 1970.")
        return value


class UtcDateTimeField(IsoDateTimeField):
    """An ISO date-time in any offset Python reads (PostgreSQL refuses some, e.g. -16:21), as UTC."""

    def clean(self, value: Any) -> Any:
        parsed = super().clean(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError("This date-time is out of range.") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class SearchFilter(filters.SearchFilter):
    """DRF's search; a refused term (e.g. with a NUL character) is named `search`, like a field."""

    def get_search_terms(self, request: Request) -> list[str]:
        try:
            return super().get_search_terms(request)
        except ApiValidationError as exc:
            raise ApiValidationError({self.search_param: exc.detail}) from None


class LeadFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=LeadStatus.choices)
    source = django_filters.MultipleChoiceFilter(choices=LeadSource.choices)
    grade = django_filters.CharFilter(field_name="grade", lookup_expr="istartswith")
    owner = django_filters.NumberFilter(field_name="owner_id")
    unassigned = django_filters.BooleanFilter(field_name="owner", lookup_expr="isnull")
    industry = django_filters.CharFilter(lookup_expr="iexact")
    country = django_filters.CharFilter(lookup_expr="iexact")
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    min_priority = django_filters.NumberFilter(field_name="priority", lookup_expr="gte")
    segment = django_filters.NumberFilter(field_name="memberships__segment_id", distinct=False)

    class Meta:
        model = Lead
        fields: list[str] = []


@extend_schema_view(
    list=extend_schema(summary="List the leads you may see, best first"),
    retrieve=extend_schema(summary="One lead with its scores and their reasons"),
    create=extend_schema(summary="Create a lead"),
    partial_update=extend_schema(summary="Change a lead (status changes are logged and rescored)"),
    update=extend_schema(summary="Replace a lead's editable fields"),
)
class LeadViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = LeadSerializer
    permission_classes = [IsAuthenticated, IsStaffRole]
    parser_classes = [BoundedJSONParser, FormParser, MultiPartParser]
    filter_backends = [DjangoFilterBackend, SearchFilter, filters.OrderingFilter]
    lookup_value_regex = "[^/]+"  # any id reaches the view's JSON 404, not Django's HTML one
    filterset_class = LeadFilter
    search_fields = ["first_name", "last_name", "email", "company_name"]
    ordering_fields = [
        "priority",
        "rule_score",
        "ml_probability",
        "created_at",
        "last_activity_at",
        "last_name",
    ]
    ordering = ["-priority", "id"]

    def get_queryset(self):
        return Lead.objects.visible_to(self.request.user).select_related("owner")

    def get_object(self) -> Lead:
        lead, request = super().get_object(), self.request  # a person's record opened (retrieve, update…)
        signals.lead_accessed.send(
            Lead, actor=request.user, lead_id=lead.pk, action="viewed", request=request
        )
        return lead

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        if not can_change_lead(self.request.user, cast(Lead, serializer.instance)):
            raise PermissionDenied("Claim this lead before changing it; it belongs to you or to nobody.")
        serializer.save()

    @extend_schema(
        methods=["GET"],
        summary="A lead's interactions, newest first",
        responses=InteractionSerializer(many=True),
    )
    @extend_schema(
        methods=["POST"],
        summary="Record an interaction for a lead (it is stored, then the lead is rescored)",
        request=InteractionSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Your own id for this event (e.g. a UUID). A retry with the same key stores "
                "nothing again and answers 200 with the event as first stored.",
            )
        ],
        responses={
            201: InteractionSerializer,
            200: OpenApiResponse(InteractionSerializer, description="A retry: already stored"),
            400: OpenApiResponse(description="Field errors"),
        },
    )
    @action(
        detail=True,
        methods=["get", "post"],
        serializer_class=InteractionSerializer,
        filterset_class=None,
        search_fields=[],
        ordering_fields=[],
    )
    def interactions(self, request: Request, pk: str | None = None) -> Response:
        lead = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(lead.interactions.order_by("-occurred_at", "-id"))
            return self.get_paginated_response(InteractionSerializer(page, many=True).data)
        if not can_change_lead(request.user, lead):
            raise PermissionDenied("Claim this lead before logging interactions on it.")
        key = idempotency_key(request)
        if key and (stored := services.find_event(lead_id=lead.pk, client_event_id=key)) is not None:
            return replayed(stored)
        serializer = InteractionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            interaction = services.record_interaction(
                client_event_id=key,
                lead=lead,
                kind=data["kind"],
                occurred_at=data.get("occurred_at"),
                channel=data.get("channel"),
                payload=data.get("payload"),
                sentiment=data.get("sentiment"),
                logged_by=request_user(request),
            )
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None
        return Response(InteractionSerializer(interaction).data, status=status.HTTP_201_CREATED)


IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,100}$")  # printable ASCII, no spaces


def idempotency_key(request: Request) -> str:
    """The client's id for this event (Idempotency-Key header); 400 when it is not a usable id."""
    key = request.headers.get("Idempotency-Key", "")
    if key and not IDEMPOTENCY_KEY.match(key):
        raise ApiValidationError(
            {"Idempotency-Key": ["Use 1–100 printable ASCII characters without spaces, e.g. a UUID."]}
        )
    return key


def replayed(interaction: Interaction) -> Response:
    """The answer to a retry: the event as first stored, and nothing stored again."""
    response = Response(InteractionSerializer(interaction).data, status=status.HTTP_200_OK)
    response["Idempotent-Replayed"] = "true"
    return response
