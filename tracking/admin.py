from __future__ import annotations

from django.contrib import admin

from tracking.models import TrackingSettings


@admin.register(TrackingSettings)
class TrackingSettingsAdmin(admin.ModelAdmin):
    list_display = ("site", "mode")
    list_filter = ("mode",)
