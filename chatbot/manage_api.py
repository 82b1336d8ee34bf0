"""REST API for managers: the chat sites (key, origins, hours, greetings, consent wording) and their FAQ.

Saved like the admin saves them, with the model's own validation (`full_clean`: origins, time
zone, business hours, greetings, `Site.clean`) plus a few checks the widget relies on (an origin
is scheme://host[:port], greetings are text). A site's identity secret is never readable: it is
shown once, in the answer that creates the site or rotates the secret; reads show its last four
characters so a manager can tell which one is in use.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import django_filters
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from chatbot.models import TIME_OF_DAY, FaqEntry, Site, new_secret, normalise_origin
from leadcrm.api import BoundedJSONParser, IsManager, StrictFieldsMixin, UtcDateTimeFilter, as_api_error
from leadcrm.models import json_problem
from leadcrm.permissions import IsStaffRole

User = get_user_model()

MAX_ORIGINS = 50
MAX_GREETING = 300


def full_clean_and_save(instance: Site | FaqEntry) -> None:
    """The admin's validation (every field validator and the model's clean), then save."""
    try:
        instance.full_clean()
    except DjangoValidationError as exc:
        raise as_api_error(exc) from None
    instance.save()


def json_or_400(value: Any) -> Any:
    if problem := json_problem(value):
        raise serializers.ValidationError(problem)
    return value


class SiteSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    identity_secret_hint = serializers.SerializerMethodField(
        help_text="The last four characters of the identity secret; the secret itself is shown once."
    )
    allowed_origins = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=MAX_ORIGINS,
        help_text='Pages allowed to embed the widget, e.g. ["https://www.example.com"].',
    )
    business_hours = serializers.JSONField(
        required=False, help_text='e.g. {"mon": [["09:00", "17:00"]]}; missing days are closed.'
    )
    greetings = serializers.JSONField(
        required=False, help_text=f"Text per time of day: {', '.join(TIME_OF_DAY)}; {{name}} is filled in."
    )
    handoff_owner = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), required=False, allow_null=True
    )

    class Meta:
        model = Site
        fields: tuple[str, ...] = (
            "id",
            "name",
            "public_key",
            "identity_secret_hint",
            "allowed_origins",
            "timezone",
            "business_hours",
            "greetings",
            "brand_color",
            "privacy_url",
            "privacy_text",
            "consent_text",
            "marketing_consent_text",
            "consent_version",
            "faq_threshold",
            "negative_messages_for_handoff",
            "handoff_owner",
            "created_at",
        )
        read_only_fields = ("public_key", "created_at")

    def get_identity_secret_hint(self, site: Site) -> str:
        return "…" + site.identity_secret[-4:]

    def validate_allowed_origins(self, value: list[str]) -> list[str]:
        origins = []
        for origin in value:
            parts = urlsplit(origin.strip())
            try:
                port_ok = parts.port is None or 0 < parts.port < 65536
            except ValueError:
                port_ok = False
            if not (
                parts.scheme in ("http", "https")
                and parts.hostname
                and port_ok
                and parts.path in ("", "/")
                and not (parts.query or parts.fragment or parts.username or parts.password)
            ):
                raise serializers.ValidationError(
                    f"{origin!r} is not an origin; use scheme://host[:port], e.g. https://www.example.com."
                )
            origins.append(normalise_origin(origin))
        return list(dict.fromkeys(origins))

    def validate_business_hours(self, value: Any) -> Any:
        return json_or_400(value)

    def validate_greetings(self, value: Any) -> Any:
        json_or_400(value)
        if not isinstance(value, dict) or not set(value) <= set(TIME_OF_DAY):
            raise serializers.ValidationError(
                f"Greetings are an object with keys among: {', '.join(TIME_OF_DAY)}."
            )
        if not all(isinstance(text, str) and 0 < len(text) <= MAX_GREETING for text in value.values()):
            raise serializers.ValidationError(f"Each greeting is text of 1 to {MAX_GREETING} characters.")
        return value

    def create(self, validated_data: dict[str, Any]) -> Site:
        site = Site(**validated_data)
        full_clean_and_save(site)
        return site

    def update(self, instance: Site, validated_data: dict[str, Any]) -> Site:
        for name, value in validated_data.items():
            setattr(instance, name, value)
        full_clean_and_save(instance)
        return instance


class SiteWithSecretSerializer(SiteSerializer):
    """A site with its identity secret in full: only in the answer that creates or rotates it."""

    identity_secret = serializers.CharField(
        read_only=True,
        help_text="Shown this once: store it on your web server to sign visitors' emails (HMAC-SHA256).",
    )

    class Meta(SiteSerializer.Meta):
        fields: tuple[str, ...] = (*SiteSerializer.Meta.fields, "identity_secret")


@extend_schema(tags=["chat sites"])
@extend_schema_view(
    list=extend_schema(summary="Chat sites (managers)"),
    retrieve=extend_schema(summary="One chat site (its identity secret is never shown again)"),
    create=extend_schema(
        summary="Create a chat site (managers); the answer shows its identity secret once",
        responses={201: SiteWithSecretSerializer},
    ),
    partial_update=extend_schema(summary="Change a chat site (managers)"),
    update=extend_schema(summary="Replace a chat site's settings (managers)"),
    destroy=extend_schema(summary="Delete a chat site with its FAQ and conversations (managers)"),
)
class SiteViewSet(viewsets.ModelViewSet):
    serializer_class = SiteSerializer
    permission_classes = [IsAuthenticated, IsStaffRole, IsManager]
    parser_classes = [BoundedJSONParser]
    filter_backends: list[Any] = []
    queryset = Site.objects.order_by("name", "id")
    lookup_value_regex = "[^/]+"

    def get_object(self) -> Site:
        if not str(self.kwargs.get("pk", "")).isdigit():
            raise NotFound()
        return super().get_object()

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        site = serializer.save()
        return Response(SiteWithSecretSerializer(site).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Replace the site's identity secret (managers); the answer shows the new one once",
        request=None,
        responses=SiteWithSecretSerializer,
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        with transaction.atomic():
            site = Site.objects.select_for_update().get(pk=self.get_object().pk)
            site.identity_secret = new_secret()
            site.save(update_fields=["identity_secret"])
        return Response(SiteWithSecretSerializer(site).data)


class FaqEntrySerializer(StrictFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = FaqEntry
        fields = ("id", "site", "question", "variants", "answer", "active", "updated_at")
        read_only_fields = ("updated_at",)
        extra_kwargs = {"variants": {"max_length": 5000}, "answer": {"max_length": 5000}}

    def create(self, validated_data: dict[str, Any]) -> FaqEntry:
        entry = FaqEntry(**validated_data)
        full_clean_and_save(entry)  # the saved signal refits the site's FAQ matcher
        return entry

    def update(self, instance: FaqEntry, validated_data: dict[str, Any]) -> FaqEntry:
        for name, value in validated_data.items():
            setattr(instance, name, value)
        full_clean_and_save(instance)
        return instance


class FaqEntryFilter(django_filters.FilterSet):
    site = django_filters.NumberFilter(field_name="site_id")
    active = django_filters.BooleanFilter()
    updated_after = UtcDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = FaqEntry
        fields: list[str] = []


@extend_schema(tags=["chat FAQ"])
@extend_schema_view(
    list=extend_schema(summary="FAQ entries of every chat site (managers)"),
    retrieve=extend_schema(summary="One FAQ entry"),
    create=extend_schema(summary="Add an FAQ entry; the bot answers from it at once"),
    partial_update=extend_schema(summary="Change an FAQ entry"),
    update=extend_schema(summary="Replace an FAQ entry"),
    destroy=extend_schema(summary="Delete an FAQ entry"),
)
class FaqEntryViewSet(viewsets.ModelViewSet):
    serializer_class = FaqEntrySerializer
    permission_classes = [IsAuthenticated, IsStaffRole, IsManager]
    parser_classes = [BoundedJSONParser]
    filter_backends = [DjangoFilterBackend]
    filterset_class = FaqEntryFilter
    queryset = FaqEntry.objects.order_by("site_id", "id")
    lookup_value_regex = "[^/]+"

    def get_object(self) -> FaqEntry:
        if not str(self.kwargs.get("pk", "")).isdigit():
            raise NotFound()
        return super().get_object()
