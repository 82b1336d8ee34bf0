"""REST API for managers: webhooks (CRUD; the secret shown once) and their deliveries (read, replay).

Writes go through webhooks.services (create_webhook / update_webhook: the SSRF guard checks the URL).
Registered in config/urls.py:
    router.register("webhooks", webhooks_api.WebhookViewSet, basename="webhook")
    router.register("webhook-deliveries", webhooks_api.DeliveryViewSet, basename="webhook-delivery")
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from leadcrm.api import (
    BoundedJSONParser,
    IsManager,
    StrictFieldsMixin,
    UtcDateTimeFilter,
    as_api_error,
)
from leadcrm.http import request_user
from leadcrm.permissions import IsStaffRole
from webhooks import services
from webhooks.models import Delivery, DeliveryStatus, Event, Webhook


class WebhookSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=Event.choices), max_length=len(Event)
    )
    url = serializers.CharField(max_length=500)
    secret_hint = serializers.SerializerMethodField(help_text="The secret's last four characters.")

    class Meta:
        model = Webhook
        fields: tuple[str, ...] = (
            "id",
            "name",
            "url",
            "events",
            "active",
            "secret_hint",
            "created_by",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("created_by", "created_at", "updated_at")

    def get_secret_hint(self, webhook: Webhook) -> str:
        return "…" + webhook.secret[-4:]

    def create(self, validated_data: dict[str, Any]) -> Webhook:
        try:
            return services.create_webhook(by=request_user(self.context["request"]), **validated_data)
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None

    def update(self, instance: Webhook, validated_data: dict[str, Any]) -> Webhook:
        current = {
            "name": instance.name,
            "url": instance.url,
            "events": instance.events,
            "active": instance.active,
        }
        try:
            return services.update_webhook(webhook=instance, **{**current, **validated_data})
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None


class WebhookWithSecretSerializer(WebhookSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="Shown this once: verify deliveries' signatures with it.",
    )

    class Meta(WebhookSerializer.Meta):
        fields = (*WebhookSerializer.Meta.fields, "secret")


@extend_schema(tags=["webhooks"])
@extend_schema_view(
    list=extend_schema(summary="Webhooks (managers)"),
    retrieve=extend_schema(summary="One webhook (its secret is never shown again)"),
    create=extend_schema(
        summary="Register a webhook; the answer shows its secret once",
        responses={201: WebhookWithSecretSerializer},
    ),
    partial_update=extend_schema(summary="Change a webhook (the URL is checked again)"),
    update=extend_schema(summary="Replace a webhook's settings"),
    destroy=extend_schema(summary="Delete a webhook with its deliveries"),
)
class WebhookViewSet(viewsets.ModelViewSet):
    serializer_class = WebhookSerializer
    permission_classes = [IsAuthenticated, IsStaffRole, IsManager]
    parser_classes = [BoundedJSONParser]
    filter_backends: list[Any] = []
    queryset = Webhook.objects.order_by("name", "pk")
    lookup_value_regex = "[^/]+"

    def get_object(self) -> Webhook:
        if not str(self.kwargs.get("pk", "")).isdigit():
            raise NotFound()
        return super().get_object()

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(
            WebhookWithSecretSerializer(serializer.save()).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        summary="Issue a new secret; the answer shows it once",
        request=None,
        responses=WebhookWithSecretSerializer,
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        webhook = self.get_object()
        services.update_webhook(
            webhook=webhook,
            name=webhook.name,
            url=webhook.url,
            events=webhook.events,
            active=webhook.active,
            rotate_secret=True,
        )
        return Response(WebhookWithSecretSerializer(webhook).data)


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = (
            "id",
            "webhook",
            "event",
            "event_id",
            "payload",
            "status",
            "attempts",
            "response_code",
            "error",
            "created_at",
            "next_attempt_at",
            "last_attempt_at",
            "delivered_at",
            "duration_ms",
            "replay_of",
        )
        read_only_fields = fields


class DeliveryFilter(django_filters.FilterSet):
    webhook = django_filters.NumberFilter(field_name="webhook_id")
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)
    event = django_filters.CharFilter()
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Delivery
        fields: list[str] = []


@extend_schema(tags=["webhooks"])
@extend_schema_view(
    list=extend_schema(summary="Deliveries of every webhook, newest first (managers)"),
    retrieve=extend_schema(summary="One delivery: what was sent, and what came back"),
)
class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = DeliverySerializer
    permission_classes = [IsAuthenticated, IsStaffRole, IsManager]
    filter_backends = [DjangoFilterBackend]
    filterset_class = DeliveryFilter
    queryset = Delivery.objects.order_by("-created_at", "-pk")
    lookup_value_regex = "[^/]+"

    def get_object(self) -> Delivery:
        if not str(self.kwargs.get("pk", "")).isdigit():
            raise NotFound()
        return super().get_object()

    @extend_schema(
        summary="Send this delivery again (same event id), now",
        request=None,
        responses={201: DeliverySerializer},
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def replay(self, request: Request, pk: str | None = None) -> Response:
        copy = services.replay(delivery=self.get_object())
        return Response(DeliverySerializer(copy).data, status=status.HTTP_201_CREATED)
