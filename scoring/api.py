"""REST API for scoring rules: everyone with a CRM role reads them, managers write them.

A write goes through `scoring.services.save_rule` / `delete_rule`, exactly like the admin: the
rule is validated (`Rule.clean`), the change is kept on record (RuleChange), and one full
recompute is queued after commit. Old scores stay visible until the recompute finishes.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated

from leadcrm.api import BoundedJSONParser, ManagerWrites, StrictFieldsMixin, UtcDateTimeFilter, as_api_error
from leadcrm.http import request_user
from leadcrm.models import KIND_SLUGS, InteractionKind
from leadcrm.permissions import IsStaffRole
from scoring import services
from scoring.models import RULE_EDITABLE_FIELDS, Category, Rule
from scoring.selectors import latest_run


class RuleSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=KIND_SLUGS),
        required=False,
        max_length=len(KIND_SLUGS),
        help_text='Engagement rules: interaction kinds counted, e.g. ["page_view", "email_click"].',
    )
    recompute_status = serializers.SerializerMethodField(
        help_text="The latest full recompute (a write queues one): queued, running, applying, done or failed."
    )

    class Meta:
        model = Rule
        fields = (
            "id",
            *RULE_EDITABLE_FIELDS,
            "last_error",
            "last_error_at",
            "created_at",
            "updated_at",
            "recompute_status",
        )
        read_only_fields = ("last_error", "last_error_at", "created_at", "updated_at")

    def get_recompute_status(self, rule: Rule) -> str:
        if "latest_run" not in self.context:
            run = latest_run()
            self.context["latest_run"] = run.status if run is not None else ""
        return str(self.context["latest_run"])

    def to_representation(self, instance: Rule) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["kinds"] = [InteractionKind(k).slug for k in instance.kinds or [] if k in InteractionKind.values]
        return data

    def validate_kinds(self, value: list[str]) -> list[int]:
        return sorted({int(InteractionKind.from_slug(slug)) for slug in value})

    def validate_half_life_days(self, value: float | None) -> float | None:
        if value is not None and not 0 < value <= 36_500:
            raise serializers.ValidationError("The half-life runs from more than 0 to 36500 days.")
        return value

    def create(self, validated_data: dict[str, Any]) -> Rule:
        return self._save(Rule(**validated_data))

    def update(self, instance: Rule, validated_data: dict[str, Any]) -> Rule:
        for name, value in validated_data.items():
            setattr(instance, name, value)
        return self._save(instance)

    def _save(self, rule: Rule) -> Rule:
        try:
            services.save_rule(rule=rule, by=request_user(self.context["request"]))
        except DjangoValidationError as exc:
            raise as_api_error(exc) from None
        self.context.pop("latest_run", None)  # the write may have queued a recompute
        return rule


class RuleFilter(django_filters.FilterSet):
    category = django_filters.ChoiceFilter(choices=Category.choices)
    active = django_filters.BooleanFilter()
    updated_after = UtcDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Rule
        fields: list[str] = []


@extend_schema(tags=["scoring rules"])
@extend_schema_view(
    list=extend_schema(summary="Scoring rules (everyone reads; managers write)"),
    retrieve=extend_schema(summary="One scoring rule"),
    create=extend_schema(summary="Create a rule (managers); every lead is rescored"),
    partial_update=extend_schema(summary="Change a rule (managers); every lead is rescored"),
    update=extend_schema(summary="Replace a rule (managers); every lead is rescored"),
    destroy=extend_schema(summary="Delete a rule (managers); every lead is rescored"),
)
class RuleViewSet(viewsets.ModelViewSet):
    serializer_class = RuleSerializer
    permission_classes = [IsAuthenticated, IsStaffRole, ManagerWrites]
    parser_classes = [BoundedJSONParser]
    filter_backends = [DjangoFilterBackend]
    filterset_class = RuleFilter
    queryset = Rule.objects.order_by("category", "name", "id")
    lookup_value_regex = "[^/]+"

    def get_object(self) -> Rule:
        if not str(self.kwargs.get("pk", "")).isdigit():
            raise NotFound()
        return super().get_object()

    def perform_destroy(self, instance: Rule) -> None:
        services.delete_rule(rule=instance, by=request_user(self.request))
