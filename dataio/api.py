"""REST API for managers: import jobs, read-only: status, counts and per-row results.

Registered in config/urls.py:
    router.register("imports", dataio_api.ImportJobViewSet, basename="import")
"""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from dataio.models import ImportJob, ImportRowResult
from leadcrm.api import IsManager
from leadcrm.permissions import IsStaffRole


class ImportJobSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = ImportJob
        fields = (
            "id",
            "original_name",
            "created_by",
            "created_at",
            "status",
            "dry_run",
            "total_rows",
            "done_rows",
            "percent",
            "created",
            "updated",
            "skipped",
            "refused",
            "error",
            "queued_at",
            "started_at",
            "finished_at",
            "headers",
            "mapping",
            "on_duplicate",
            "with_outcomes",
        )
        read_only_fields = fields


class ImportRowSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportRowResult
        fields = ("line", "action", "reason")
        read_only_fields = fields


class ImportRowFilter(django_filters.FilterSet):
    action = django_filters.MultipleChoiceFilter(choices=ImportRowResult.Action.choices)

    class Meta:
        model = ImportRowResult
        fields: list[str] = []


@extend_schema(tags=["imports"])
@extend_schema_view(
    list=extend_schema(summary="Import jobs, newest first (managers)"),
    retrieve=extend_schema(summary="One import job: status, progress and counts"),
)
class ImportJobViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ImportJobSerializer
    permission_classes = [IsAuthenticated, IsStaffRole, IsManager]
    filter_backends: list[Any] = []
    queryset = ImportJob.objects.order_by("-created_at", "-id")
    lookup_value_regex = "[^/]+"

    def get_object(self) -> ImportJob:
        if not str(self.kwargs.get("pk", "")).isdigit():
            raise NotFound()
        return super().get_object()

    @extend_schema(
        summary="What the last run did with each row (refused rows say why), by line",
        parameters=[
            OpenApiParameter(
                "action",
                str,
                many=True,
                enum=ImportRowResult.Action.values,
                description="e.g. refuse",
            )
        ],
        responses=ImportRowSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def rows(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        chosen = ImportRowFilter(request.query_params, queryset=job.rows.order_by("line", "id"))
        if not chosen.is_valid():
            raise ValidationError(chosen.errors)
        rows = chosen.qs
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ImportRowSerializer(page, many=True).data)
