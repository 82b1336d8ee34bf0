"""REST API v1 of the CRM core (DRF views and their serializers): leads and interactions,
segments and their members, follow-ups, and the sync feeds (docs/api.md).

Views are thin: they parse input, check the role rule in `leadcrm.permissions`, and call a
service. A Django ValidationError from a service becomes a 400 with field errors. The shared
pieces (StrictFieldsMixin, BoundedJSONParser, UtcDateTimeFilter, as_api_error, ManagerWrites,
IsManager) are used by the scoring and chat apps' API modules too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode

import django_filters
from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Q
from django.urls import path
from django.utils import timezone
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import filters, generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ParseError, PermissionDenied
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
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
    FollowUp,
    Interaction,
    InteractionKind,
    Lead,
    LeadSource,
    LeadStatus,
    Segment,
    SegmentKind,
    SegmentMembership,
    json_problem,
    nests_deeper,
)
from leadcrm.permissions import IsStaffRole, can_change_lead, is_manager
from leadcrm.segments import NUMBER_FIELDS, TEXT_FIELDS, validate_criteria

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
        if services.is_future(value):
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


# --- A complete REST API (issue 15): throttle, updated_after, segments, follow-ups, sync --------


class ManagerWrites(BasePermission):
    """Anyone with a CRM role reads; only a manager writes (POST, PUT, PATCH, DELETE)."""

    message = "Only a manager can change this."

    def has_permission(self, request: Any, view: Any) -> bool:
        return request.method in SAFE_METHODS or is_manager(request.user)


class IsManager(BasePermission):
    """Managers only, reads included."""

    message = "This is for managers."

    def has_permission(self, request: Any, view: Any) -> bool:
        return is_manager(request.user)


def as_utc(value: datetime) -> datetime:
    """A parsed date-time in UTC; one whose offset takes it out of range is a 400, not a 500."""
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise serializers.ValidationError("This date-time is out of range.") from None


MAX_ID = 2**63 - 1  # a larger id is a 400 here, not an overflow in the database
UPDATED_AFTER_HELP = (
    "Only rows changed at or after this ISO 8601 date-time (any offset; compared in UTC), "
    "e.g. 2026-01-31T12:00:00Z."
)

# `updated_after` on the lead list: the time of the last change of a CRM field (scores move
# without it: a rule change recomputes every lead, and that is not a change of the lead).
LeadFilter.base_filters["updated_after"] = UtcDateTimeFilter(
    field_name="updated_at", lookup_expr="gte", help_text=UPDATED_AFTER_HELP
)


# --- Interactions, all leads you may see -----------------------------------------------------


class InteractionFilter(django_filters.FilterSet):
    lead = django_filters.NumberFilter(field_name="lead_id")
    kind = django_filters.MultipleChoiceFilter(
        choices=[(slug, slug) for slug in KIND_SLUGS], method="filter_kind", help_text="e.g. page_view"
    )
    occurred_after = UtcDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = UtcDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    # Interactions are events: stored once, rarely corrected. "Updated" is when LeadCRM stored the
    # event (created_at), so an event that arrives late with an old occurred_at is still picked up.
    updated_after = UtcDateTimeFilter(
        field_name="created_at",
        lookup_expr="gte",
        help_text="Only interactions stored at or after this ISO 8601 date-time (whatever their "
        "occurred_at), e.g. 2026-01-31T12:00:00Z.",
    )

    class Meta:
        model = Interaction
        fields: list[str] = []

    def filter_kind(self, queryset: Any, name: str, value: list[str]) -> Any:
        return (
            queryset.filter(kind__in=[InteractionKind.from_slug(slug) for slug in value])
            if value
            else queryset
        )


@extend_schema(tags=["interactions"])
@extend_schema_view(
    list=extend_schema(summary="Interactions of every lead you may see, newest first"),
    retrieve=extend_schema(summary="One interaction"),
)
class InteractionViewSet(viewsets.ReadOnlyModelViewSet):
    """Read-only: interactions are recorded on their lead (POST /leads/{id}/interactions/)."""

    serializer_class = InteractionSerializer
    permission_classes = [IsAuthenticated, IsStaffRole]
    filter_backends = [DjangoFilterBackend]
    filterset_class = InteractionFilter
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        interactions = Interaction.objects.order_by("-occurred_at", "-id")
        if is_manager(self.request.user):
            return interactions
        return interactions.filter(lead__in=Lead.objects.visible_to(self.request.user).values("pk"))

    def get_object(self) -> Interaction:
        if not str(self.kwargs.get("pk", "")).isdigit():
            raise NotFound()
        return super().get_object()


# --- Segments and their members -----------------------------------------------------------------

CUSTOM_KEY = re.compile(r"^[A-Za-z0-9_\- ]{1,64}$")
CUSTOM_LOOKUPS = {"", "iexact", "icontains", "istartswith", "gt", "gte", "lt", "lte", "isnull"}
PLAIN_JSON = (str, int, float, bool)
INT4 = 2**31


def criteria_problem(criteria: dict[str, Any]) -> str | None:
    """What the database could not run in these criteria, beyond `validate_criteria`'s field and
    lookup names: custom attribute names, and the type and range of each value (e.g. an object
    where text is compared)."""
    for key, value in criteria.items():
        field, _, rest = key.partition("__")
        lookup = rest
        if field == "custom":
            parts = rest.split("__") if rest else []
            if len(parts) == 2 and parts[1] in CUSTOM_LOOKUPS:
                name, lookup = parts
            elif len(parts) == 1:
                name, lookup = parts[0], ""
            else:
                name = ""
            if not CUSTOM_KEY.match(name):
                return f"{key}: name a custom attribute as custom__name (letters, digits, _ - and spaces)."
        elif field.startswith("custom"):
            return f"Unknown lead field {field!r}."
        if lookup == "isnull":
            if not isinstance(value, bool):
                return f"{key} takes true or false."
            continue
        values = value if lookup == "in" and isinstance(value, list) else [value]
        if lookup == "in" and not 1 <= len(values) <= 1000:
            return f"{key} needs 1 to 1000 values."
        for item in values:
            if not isinstance(item, PLAIN_JSON):
                return f"{key}: compare with plain values (text or numbers), not lists or objects."
            if field in NUMBER_FIELDS and (isinstance(item, bool) or not isinstance(item, int | float)):
                return f"{key} compares numbers; {item!r} is not a number."
            if field in NUMBER_FIELDS and not -INT4 < float(item) < INT4:
                return f"{key}: {item} is out of range."
            if field in TEXT_FIELDS and not isinstance(item, str):
                return f"{key} compares text; put {item!r} in quotes."
            if isinstance(item, str) and len(item) > 500:
                return f"{key}: values are at most 500 characters."
    return None


class SegmentSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    criteria = serializers.JSONField(
        required=False,
        help_text='Dynamic segments: lead-field lookups, e.g. {"industry__iexact": "Retail", '
        '"employee_count__gte": 50}. Static segments: leave empty.',
    )
    member_count = serializers.SerializerMethodField(help_text="Members you may see.")

    class Meta:
        model = Segment
        fields = (
            "id",
            "name",
            "description",
            "kind",
            "criteria",
            "member_count",
            "created_by",
            "created_at",
            "refreshed_at",
            "updated_at",
        )
        read_only_fields = ("created_by", "created_at", "refreshed_at", "updated_at")

    def get_member_count(self, segment: Segment) -> int:
        counted = getattr(segment, "visible_members", None)
        return int(counted) if counted is not None else 0

    def validate_criteria(self, value: Any) -> dict:
        if not isinstance(value, dict):
            raise serializers.ValidationError('Give criteria as an object, e.g. {"industry": "Retail"}.')
        if problem := json_problem(value):
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = attrs.get("kind", getattr(self.instance, "kind", SegmentKind.STATIC))
        criteria = attrs.get("criteria", getattr(self.instance, "criteria", {}))
        if kind == SegmentKind.DYNAMIC:
            try:
                validate_criteria(criteria)
            except DjangoValidationError as exc:
                raise as_api_error(exc) from None
            if problem := criteria_problem(criteria):
                raise ApiValidationError({"criteria": [problem]})
        elif criteria:
            raise ApiValidationError({"criteria": ["Static segments have no criteria; add members instead."]})
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Segment:
        return self._save(Segment(**validated_data))

    def update(self, instance: Segment, validated_data: dict[str, Any]) -> Segment:
        for name, value in validated_data.items():
            setattr(instance, name, value)
        return self._save(instance)

    def _save(self, segment: Segment) -> Segment:
        try:
            services.save_segment(segment=segment, by=request_user(self.context["request"]))
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None
        segment.visible_members = segment.memberships.filter(  # type: ignore[attr-defined]
            lead__in=Lead.objects.visible_to(self.context["request"].user).values("pk")
        ).count()
        return segment


class SegmentFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=SegmentKind.choices)
    updated_after = UtcDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text=UPDATED_AFTER_HELP + " A segment changes when its definition or its members change.",
    )

    class Meta:
        model = Segment
        fields: list[str] = []


class MembershipSerializer(serializers.ModelSerializer):
    lead_name = serializers.CharField(source="lead.display_name", read_only=True)

    class Meta:
        model = SegmentMembership
        fields = ("lead", "lead_name", "added_at")
        read_only_fields = fields


class MembersChange(serializers.Serializer):
    add = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        max_length=10_000,
        default=list,
    )
    remove = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        max_length=10_000,
        default=list,
    )

    def validate_add(self, value: list[int]) -> list[int]:
        known = set(Lead.objects.filter(pk__in=value).values_list("pk", flat=True))
        if unknown := sorted(set(value) - known):
            raise serializers.ValidationError(f"No lead with id {', '.join(map(str, unknown[:20]))}.")
        return value


class MembersChanged(serializers.Serializer):
    added = serializers.IntegerField()
    removed = serializers.IntegerField()


class SegmentRefreshed(serializers.Serializer):
    members = serializers.IntegerField(help_text="Leads matching the criteria now.")


@extend_schema(tags=["segments"])
@extend_schema_view(
    list=extend_schema(summary="Segments (everyone reads; managers write)"),
    retrieve=extend_schema(summary="One segment"),
    create=extend_schema(summary="Create a segment (managers); a dynamic one is filled at once"),
    partial_update=extend_schema(summary="Change a segment (managers); a dynamic one is refreshed"),
    update=extend_schema(summary="Replace a segment (managers)"),
    destroy=extend_schema(summary="Delete a segment and its memberships (managers); the leads stay"),
)
class SegmentViewSet(viewsets.ModelViewSet):
    serializer_class = SegmentSerializer
    permission_classes = [IsAuthenticated, IsStaffRole, ManagerWrites]
    parser_classes = [BoundedJSONParser]
    filter_backends = [DjangoFilterBackend, SearchFilter]
    filterset_class = SegmentFilter
    search_fields = ["name", "description"]
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        visible = Lead.objects.visible_to(self.request.user).values("pk")
        return Segment.objects.annotate(
            visible_members=Count("memberships", filter=Q(memberships__lead__in=visible))
        ).order_by("name", "id")

    def get_object(self) -> Segment:
        if not str(self.kwargs.get("pk", "")).isdigit():
            raise NotFound()
        return super().get_object()

    def perform_destroy(self, instance: Segment) -> None:
        services.delete_segment(segment=instance)

    @extend_schema(
        methods=["GET"],
        summary="The segment's members you may see, newest first",
        responses=MembershipSerializer(many=True),
    )
    @extend_schema(
        methods=["POST"],
        summary="Add and remove members of a static segment (managers)",
        request=MembersChange,
        responses={200: MembersChanged},
    )
    @action(detail=True, methods=["get", "post"], filterset_class=None, search_fields=[])
    def members(self, request: Request, pk: str | None = None) -> Response:
        segment = self.get_object()
        if request.method == "GET":
            visible = Lead.objects.visible_to(request.user).values("pk")
            memberships = (
                segment.memberships.filter(lead__in=visible)
                .select_related("lead")
                .order_by("-added_at", "-id")
            )
            page = self.paginate_queryset(memberships)
            return self.get_paginated_response(MembershipSerializer(page, many=True).data)
        change = MembersChange(data=request.data)
        change.is_valid(raise_exception=True)
        try:
            added, removed = services.change_members(
                segment=segment, add=change.validated_data["add"], remove=change.validated_data["remove"]
            )
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None
        return Response(MembersChanged({"added": added, "removed": removed}).data)

    @extend_schema(
        summary="Recompute a dynamic segment's members now (managers)",
        request=None,
        responses=SegmentRefreshed,
    )
    @action(detail=True, methods=["post"], filterset_class=None, search_fields=[])
    def refresh(self, request: Request, pk: str | None = None) -> Response:
        segment = self.get_object()
        try:
            members = services.refresh_dynamic_segment(segment=segment)
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None
        return Response(SegmentRefreshed({"members": members}).data)


# --- Follow-ups -----------------------------------------------------------------------------------


class FollowUpSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    lead = serializers.IntegerField(
        source="lead_id", help_text="The lead's id; set when scheduled.", min_value=1, max_value=MAX_ID
    )
    assigned_to = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True),
        required=False,
        allow_null=True,
        help_text="Who does it; by default the lead's owner, or you.",
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=1000)

    class Meta:
        model = FollowUp
        fields = (
            "id",
            "lead",
            "assigned_to",
            "due_at",
            "note",
            "done_at",
            "created_by",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("done_at", "created_by", "created_at", "updated_at")

    def validate_due_at(self, value: datetime) -> datetime:
        return as_utc(value)

    def validate_lead(self, value: int) -> int:
        if self.instance is not None and value != self.instance.lead_id:
            raise serializers.ValidationError("A follow-up stays on its lead; schedule a new one instead.")
        return value

    def validate_assigned_to(self, value: Any) -> Any:
        user = self.context["request"].user
        if value is not None and value != user and not is_manager(user):
            raise serializers.ValidationError("Only a manager can give a follow-up to someone else.")
        return value


class FollowUpFilter(django_filters.FilterSet):
    lead = django_filters.NumberFilter(field_name="lead_id")
    assigned_to = django_filters.NumberFilter(field_name="assigned_to_id")
    mine = django_filters.BooleanFilter(method="filter_mine", help_text="Only follow-ups assigned to you.")
    done = django_filters.BooleanFilter(field_name="done_at", lookup_expr="isnull", exclude=True)
    due_after = UtcDateTimeFilter(field_name="due_at", lookup_expr="gte")
    due_before = UtcDateTimeFilter(field_name="due_at", lookup_expr="lt")
    updated_after = UtcDateTimeFilter(
        field_name="updated_at", lookup_expr="gte", help_text=UPDATED_AFTER_HELP
    )

    class Meta:
        model = FollowUp
        fields: list[str] = []

    def filter_mine(self, queryset: Any, name: str, value: bool | None) -> Any:
        if value is None:
            return queryset
        mine = Q(assigned_to=self.request.user) if self.request is not None else Q(pk__in=[])
        return queryset.filter(mine) if value else queryset.exclude(mine)


@extend_schema(tags=["follow-ups"])
@extend_schema_view(
    list=extend_schema(summary="Follow-ups of the leads you may see, soonest first"),
    retrieve=extend_schema(summary="One follow-up"),
    create=extend_schema(summary="Schedule a follow-up on a lead you may change"),
    partial_update=extend_schema(summary="Reschedule, reword or reassign an open follow-up"),
    destroy=extend_schema(summary="Delete a follow-up scheduled by mistake"),
)
class FollowUpViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = FollowUpSerializer
    permission_classes = [IsAuthenticated, IsStaffRole]
    parser_classes = [BoundedJSONParser, FormParser, MultiPartParser]
    filter_backends = [DjangoFilterBackend, filters.OrderingFilter]
    filterset_class = FollowUpFilter
    ordering_fields = ["due_at", "created_at", "updated_at"]
    ordering = ["due_at", "id"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        follow_ups = FollowUp.objects.select_related("lead")
        if is_manager(self.request.user):
            return follow_ups
        return follow_ups.filter(lead__in=Lead.objects.visible_to(self.request.user).values("pk"))

    def get_object(self) -> FollowUp:
        if not str(self.kwargs.get("pk", "")).isdigit():
            raise NotFound()
        return super().get_object()

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        data = cast(dict[str, Any], serializer.validated_data)
        user = self.request.user
        lead = Lead.objects.visible_to(user).filter(pk=data["lead_id"]).first()
        if lead is None:
            raise ApiValidationError({"lead": [f"No lead #{data['lead_id']} that you can see."]})
        if not can_change_lead(user, lead):
            raise PermissionDenied("Claim this lead before scheduling follow-ups on it.")
        try:
            serializer.instance = services.add_follow_up(
                lead=lead,
                due_at=data["due_at"],
                note=data.get("note", ""),
                assigned_to=data.get("assigned_to"),
                created_by=request_user(self.request),
            )
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        follow_up = cast(FollowUp, serializer.instance)
        if not can_change_lead(self.request.user, follow_up.lead):
            raise PermissionDenied("Only the lead's owner or a manager can change its follow-ups.")
        changes = {k: v for k, v in cast(dict[str, Any], serializer.validated_data).items() if k != "lead_id"}
        try:
            services.update_follow_up(follow_up=follow_up, changes=changes)
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None

    def perform_destroy(self, instance: FollowUp) -> None:
        if not can_change_lead(self.request.user, instance.lead):
            raise PermissionDenied("Only the lead's owner or a manager can delete its follow-ups.")
        services.delete_follow_up(follow_up=instance)

    @extend_schema(summary="Mark a follow-up done (idempotent)", request=None, responses=FollowUpSerializer)
    @action(detail=True, methods=["post"], filterset_class=None, ordering_fields=[])
    def complete(self, request: Request, pk: str | None = None) -> Response:
        follow_up = self.get_object()
        if not can_change_lead(request.user, follow_up.lead) and follow_up.assigned_to_id != request.user.pk:
            raise PermissionDenied(
                "Only the lead's owner, the person assigned or a manager can complete this."
            )
        services.complete_follow_up(follow_up=follow_up)
        return Response(FollowUpSerializer(follow_up, context=self.get_serializer_context()).data)


# --- Sync: a change feed another system reads with a cursor --------------------------------------


class SyncCursor:
    """Keyset pagination over (time field, id) for one pass of a sync.

    A pass covers the rows changed at or after `updated_after` (all rows on a first pass) and
    before the pass's `until`, fixed when the pass starts a few seconds in the past (so a write
    still committing is not skipped). Rows changed while the pass runs fall after `until`: they
    are not served twice in this pass, and the next pass (updated_after=until) serves them. The
    cursor is signed, so a made-up one is a clear 400, not a surprise."""

    salt = "leadcrm.api.sync"

    def __init__(self, after: datetime | None, until: datetime, last: tuple[datetime, int] | None) -> None:
        self.after, self.until, self.last = after, until, last

    def encode(self, scope: str) -> str:
        last = [self.last[0].isoformat(), self.last[1]] if self.last else None
        payload = {
            "a": self.after.isoformat() if self.after else None,
            "u": self.until.isoformat(),
            "l": last,
        }
        return signing.dumps(payload, salt=f"{self.salt}:{scope}", compress=True)

    @classmethod
    def decode(cls, token: str, scope: str) -> SyncCursor:
        try:
            data = signing.loads(token, salt=f"{cls.salt}:{scope}")
            after = datetime.fromisoformat(data["a"]) if data["a"] else None
            last = (datetime.fromisoformat(data["l"][0]), int(data["l"][1])) if data["l"] else None
            return cls(after, datetime.fromisoformat(data["u"]), last)
        except (signing.BadSignature, KeyError, TypeError, ValueError, IndexError):
            raise ApiValidationError(
                {"cursor": ["This cursor is not one this endpoint gave out; start again without it."]}
            ) from None


class SyncQuery(serializers.Serializer):
    updated_after = serializers.CharField(required=False, help_text=UPDATED_AFTER_HELP + " First pass: omit.")
    cursor = serializers.CharField(
        required=False, help_text="The `next` link's cursor: the rest of this pass. Takes precedence."
    )
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=200)

    def validate_updated_after(self, value: str) -> datetime:
        try:
            parsed = UtcDateTimeField().clean(value)
        except forms.ValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return parsed


def sync_page_serializer(item: type[serializers.Serializer], name: str) -> type[serializers.Serializer]:
    """The schema of one page of a sync pass of `item` rows."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "results": item(many=True),
            "next": serializers.URLField(
                allow_null=True, help_text="The rest of this pass; null when the pass is complete."
            ),
            "updated_until": serializers.DateTimeField(
                help_text="This pass covers changes before this time (UTC)."
            ),
            "next_pass": serializers.URLField(
                help_text="Where the next pass starts (updated_after=updated_until) once `next` is null."
            ),
        },
    )


class SyncView(generics.GenericAPIView):
    """One pass of a change feed: rows in (time field, id) order, page by page with a cursor."""

    permission_classes = [IsAuthenticated, IsStaffRole]
    filter_backends: list[Any] = []
    pagination_class = None
    time_field = "updated_at"
    scope = ""

    def get(self, request: Request) -> Response:
        query = SyncQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        if params.get("cursor"):
            cursor = SyncCursor.decode(params["cursor"], self.scope)
        else:
            lag = timedelta(seconds=settings.API_SYNC_LAG_SECONDS)
            cursor = SyncCursor(params.get("updated_after"), timezone.now() - lag, None)
        rows = self.get_queryset().filter(**{f"{self.time_field}__lt": cursor.until})
        if cursor.after is not None:
            rows = rows.filter(**{f"{self.time_field}__gte": cursor.after})
        if cursor.last is not None:
            at, last_id = cursor.last
            rows = rows.filter(
                Q(**{f"{self.time_field}__gt": at}) | Q(**{self.time_field: at, "pk__gt": last_id})
            )
        size = params["page_size"]
        page = list(rows.order_by(self.time_field, "pk")[: size + 1])
        more, page = len(page) > size, page[:size]
        next_url = None
        if more:
            last = page[-1]
            token = SyncCursor(cursor.after, cursor.until, (getattr(last, self.time_field), last.pk)).encode(
                self.scope
            )
            next_url = self._link({"cursor": token, "page_size": size})
        return Response(
            {
                "results": self.get_serializer(page, many=True).data,
                "next": next_url,
                "updated_until": cursor.until.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "next_pass": self._link({"updated_after": cursor.until.astimezone(UTC).isoformat()}),
            }
        )

    def _link(self, params: dict[str, Any]) -> str:
        return self.request.build_absolute_uri(self.request.path + "?" + urlencode(params))


SYNC_PARAMETERS = [
    OpenApiParameter("updated_after", OpenApiTypes.DATETIME, description=UPDATED_AFTER_HELP),
    OpenApiParameter("cursor", str, description="The cursor of the `next` link: the rest of this pass."),
    OpenApiParameter("page_size", int, description="Rows per page, 1–1000 (default 200)."),
]


@extend_schema(
    tags=["sync"],
    summary="Leads changed in a window, oldest change first (a sync pass, cursor-paginated)",
    parameters=SYNC_PARAMETERS,
    responses=sync_page_serializer(LeadSerializer, "LeadSyncPage"),
)
class LeadSyncView(SyncView):
    serializer_class = LeadSerializer
    scope = "leads"

    def get_queryset(self):
        return Lead.objects.visible_to(self.request.user).select_related("owner")


@extend_schema(
    tags=["sync"],
    summary="Interactions stored in a window, oldest first (a sync pass, cursor-paginated)",
    parameters=SYNC_PARAMETERS,
    responses=sync_page_serializer(InteractionSerializer, "InteractionSyncPage"),
)
class InteractionSyncView(SyncView):
    serializer_class = InteractionSerializer
    time_field = "created_at"
    scope = "interactions"

    def get_queryset(self):
        if is_manager(self.request.user):
            return Interaction.objects.all()
        return Interaction.objects.filter(lead__in=Lead.objects.visible_to(self.request.user).values("pk"))


@extend_schema(
    tags=["sync"],
    summary="Follow-ups changed in a window, oldest change first (a sync pass, cursor-paginated)",
    parameters=SYNC_PARAMETERS,
    responses=sync_page_serializer(FollowUpSerializer, "FollowUpSyncPage"),
)
class FollowUpSyncView(SyncView):
    serializer_class = FollowUpSerializer
    scope = "follow-ups"

    def get_queryset(self):
        follow_ups = FollowUp.objects.all()
        if is_manager(self.request.user):
            return follow_ups
        return follow_ups.filter(lead__in=Lead.objects.visible_to(self.request.user).values("pk"))


@extend_schema(
    tags=["sync"],
    summary="Segments changed in a window (definition or members), oldest change first",
    parameters=SYNC_PARAMETERS,
    responses=sync_page_serializer(SegmentSerializer, "SegmentSyncPage"),
)
class SegmentSyncView(SyncView):
    serializer_class = SegmentSerializer
    scope = "segments"

    def get_queryset(self):
        visible = Lead.objects.visible_to(self.request.user).values("pk")
        return Segment.objects.annotate(
            visible_members=Count("memberships", filter=Q(memberships__lead__in=visible))
        )


sync_urls = [
    path("leads/", LeadSyncView.as_view(), name="sync-leads"),
    path("interactions/", InteractionSyncView.as_view(), name="sync-interactions"),
    path("follow-ups/", FollowUpSyncView.as_view(), name="sync-follow-ups"),
    path("segments/", SegmentSyncView.as_view(), name="sync-segments"),
]
