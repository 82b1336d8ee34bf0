"""Privacy requests in the admin: read-only; managers act on them on /privacy/requests/."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from leadcrm.permissions import is_manager
from privacy.models import PrivacyRequest


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "lead", "channel", "created_at", "handled_by", "handled_at")
    list_filter = ("kind", "status")
    raw_id_fields = ("lead", "handled_by")
    readonly_fields = ("lead", "kind", "status", "channel", "created_at", "handled_by", "handled_at", "note")

    # Managers see requests by their role (no model permission to hand out); nobody edits them here.
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_manager(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_manager(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
