"""API tokens in the admin: read-only (secrets are created on /account/tokens/ or with the command)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import services
from accounts.models import ApiToken
from leadcrm.http import request_user
from leadcrm.permissions import is_manager


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("name", "user__username", "prefix")
    # The hash never appears: it is useless to a reader and nobody should edit it.
    fields = (
        "name",
        "user",
        "prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    )
    readonly_fields = fields
    actions = ("revoke_selected",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a new secret must be shown once: /account/tokens/ or `manage.py create_api_token`

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The change page is a read-only view; revoking is the action below.
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return is_manager(request.user)

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        by = request_user(request)
        count = sum(services.revoke_token(token=token, by=by) for token in queryset)
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)
