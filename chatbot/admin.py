"""Admin for managers: sites (key, origins, hours, greetings), FAQ, proactive messages, segment flows."""

from __future__ import annotations

from django.contrib import admin

from chatbot.models import Conversation, FaqEntry, Message, ProactiveMessage, SegmentFlow, Site


class FaqEntryInline(admin.TabularInline):
    model = FaqEntry
    extra = 1
    fields = ("question", "variants", "answer", "active")


class ProactiveMessageInline(admin.TabularInline):
    model = ProactiveMessage
    extra = 0


class SegmentFlowInline(admin.TabularInline):
    model = SegmentFlow
    extra = 0


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "public_key", "timezone", "brand_color")
    search_fields = ("name", "public_key")
    readonly_fields = ("embed_snippet",)
    inlines = [FaqEntryInline, ProactiveMessageInline, SegmentFlowInline]

    @admin.display(description="Paste into the website")
    def embed_snippet(self, obj: Site) -> str:
        return f'<script src="https://YOUR-LEADCRM-HOST/static/chatbot/widget.js" data-site="{obj.public_key}" async></script>'


@admin.register(FaqEntry)
class FaqEntryAdmin(admin.ModelAdmin):
    list_display = ("question", "site", "active", "updated_at")
    list_filter = ("site", "active")
    search_fields = ("question", "variants", "answer")


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ("created_at", "sender", "text", "sentiment", "faq", "confidence", "unanswered", "helpful")
    readonly_fields = fields
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "site", "lead", "status", "agent", "rating", "started_at", "last_message_at")
    list_filter = ("site", "status", "rating")
    raw_id_fields = ("lead", "agent")
    readonly_fields = ("token",)
    inlines = [MessageInline]
