"""Admin for the CRM core, shaped for a manager: search, filters, inlines, read-only scores."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html, format_html_join

from leadcrm import services
from leadcrm.http import request_user
from leadcrm.models import (
    Consent,
    ConsentSource,
    FollowUp,
    Interaction,
    Lead,
    LeadStatus,
    Segment,
    SegmentKind,
    SegmentMembership,
)
from leadcrm.permissions import is_manager

admin.site.site_header = "LeadCRM administration"
admin.site.site_title = "LeadCRM admin"
admin.site.index_title = "Leads, scoring and chat"


class InteractionInline(admin.TabularInline):
    model = Interaction
    extra = 0
    fields = ("occurred_at", "kind", "channel", "summary", "sentiment", "logged_by")
    readonly_fields = ("summary",)
    ordering = ("-occurred_at",)
    show_change_link = True
    raw_id_fields = ("logged_by",)
    max_num = 200

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("logged_by")

    # Stored interactions are corrected or deleted on their own page (through the services);
    # here a manager only adds new ones.
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FollowUpInline(admin.TabularInline):
    model = FollowUp
    extra = 0
    fields = ("due_at", "assigned_to", "note", "done_at")
    raw_id_fields = ("assigned_to",)
    fk_name = "lead"


class MembershipInline(admin.TabularInline):
    model = SegmentMembership
    extra = 0
    raw_id_fields = ("lead",)
    verbose_name = "segment membership"


class ConsentInline(admin.TabularInline):
    """The consent history, read-only: consents are recorded through the services, never edited."""

    model = Consent
    extra = 0
    fields = ("recorded_at", "purpose", "granted", "source", "text", "text_version", "recorded_by")
    readonly_fields = fields
    ordering = ("-recorded_at", "-id")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


CONSENT_FLAG_FIELDS = ("marketing_consent", "contact_consent")


class LeadAdminForm(forms.ModelForm):
    consent_text = forms.CharField(
        label="How they agreed",
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Needed when you change a consent: the wording they saw or what they said, and where "
        "(e.g. “Said yes to the newsletter on the phone, 3 May”). Stored with the consent record.",
    )

    class Meta:
        model = Lead
        fields = "__all__"  # noqa: DJ007 - the admin picks the fields from its fieldsets

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data
        changed = [name for name in CONSENT_FLAG_FIELDS if name in self.changed_data]
        if changed and not (data.get("consent_text") or "").strip():
            self.add_error(
                "consent_text", "Say how and where they agreed (or withdrew) before changing consent."
            )
        return data


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    form = LeadAdminForm
    list_display = (
        "display_name",
        "company_name",
        "status",
        "source",
        "grade",
        "rule_score_display",
        "probability_display",
        "owner",
        "last_activity_at",
    )
    list_filter = (
        "status",
        "source",
        "grade",
        "owner",
        "industry",
        "annual_revenue_band",
        "marketing_consent",
    )
    search_fields = ("first_name", "last_name", "email", "company_name", "phone")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    date_hierarchy = "created_at"
    show_full_result_count = False  # COUNT(*) over a million rows on every page is not worth it
    list_per_page = 50
    inlines = [FollowUpInline, InteractionInline, ConsentInline]
    readonly_fields = (
        "rule_score",
        "fit_score",
        "engagement_score",
        "grade",
        "ml_probability",
        "priority",
        "scored_at",
        "score_reasons",
        "model_factors",
        "status_changed_at",
        "qualified_at",
        "closed_at",
        "last_activity_at",
        "marketing_consent_at",
        "contact_consent_at",
        "live_until",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        ("Person", {"fields": (("first_name", "last_name"), ("email", "phone"), "job_title")}),
        ("Company", {"fields": ("company_name", "industry", ("employee_count", "annual_revenue_band"))}),
        ("Place and language", {"fields": (("country", "city"), ("timezone", "preferred_language"))}),
        (
            "Source",
            {"fields": ("source", ("utm_source", "utm_medium", "utm_campaign"), ("utm_term", "utm_content"))},
        ),
        (
            "Lifecycle",
            {
                "fields": (
                    "status",
                    "lost_reason",
                    "owner",
                    ("status_changed_at", "qualified_at", "closed_at"),
                )
            },
        ),
        (
            "Consent",
            {
                "fields": (
                    ("marketing_consent", "marketing_consent_at"),
                    ("contact_consent", "contact_consent_at"),
                    "consent_text",
                )
            },
        ),
        (
            "Scores",
            {
                "fields": (
                    ("rule_score", "fit_score", "engagement_score", "grade"),
                    ("ml_probability", "priority", "scored_at"),
                    "score_reasons",
                    "model_factors",
                )
            },
        ),
        (
            "More",
            {
                "classes": ("collapse",),
                "fields": (
                    "custom",
                    "visitor_id",
                    "live_until",
                    "last_activity_at",
                    "created_at",
                    "updated_at",
                ),
            },
        ),
    )

    @admin.display(description="Rule score", ordering="rule_score")
    def rule_score_display(self, lead: Lead) -> str:
        return f"{lead.rule_score:.0f}"

    @admin.display(description="Probability", ordering="ml_probability")
    def probability_display(self, lead: Lead) -> str:
        return "—" if lead.ml_probability is None else f"{lead.ml_probability:.0%}"

    @admin.display(description="Why this rule score")
    def score_reasons(self, lead: Lead) -> str:
        rows = [(r.get("reason", ""), f"{r.get('points', 0):+g}") for r in lead.score_breakdown or []]
        if not rows:
            return "No rule fired yet."
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} ({})</li>", rows))

    @admin.display(description="Model factors")
    def model_factors(self, lead: Lead) -> str:
        rows = [
            (f.get("label", f.get("feature", "")), f"{f.get('effect', 0):+.3f}")
            for f in lead.ml_factors or []
        ]
        if not rows:
            return "No model prediction yet."
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} ({})</li>", rows))

    def save_model(self, request: HttpRequest, obj: Lead, form: ModelForm, change: bool) -> None:
        # The same stamps, timeline note and rescore as every other writer: through the services.
        # The form already wrote its values onto `obj`; the services start from the stored row.
        user = request_user(request)
        # Consent set here is recorded with who set it: a manager's as "admin", a salesperson's as theirs.
        source = ConsentSource.ADMIN if is_manager(user) else ConsentSource.SALESPERSON
        consent_text = form.cleaned_data.get("consent_text", "").strip()
        data = {name: value for name, value in form.cleaned_data.items() if name != "consent_text"}
        fields = {name: data[name] for name in form.changed_data if name in data}
        try:
            if change:
                stored = Lead.objects.get(pk=obj.pk)
                if "status" in fields and fields["status"] == LeadStatus.LOST:
                    fields.setdefault("lost_reason", data.get("lost_reason", ""))
                lead = services.edit_lead(
                    lead=stored, changes=fields, by=user, consent_source=source, consent_text=consent_text
                )
            else:
                lead = services.create_lead(
                    **data, consent_source=source, consent_text=consent_text, recorded_by=user
                )
        except ValidationError as exc:
            # Validation the form could not know (e.g. a lost lead without a reason): nothing saved.
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            raise _Refused from exc
        obj.pk = lead.pk
        obj.refresh_from_db()

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().changeform_view(request, *args, **kwargs)
        except _Refused:
            return HttpResponseRedirect(request.get_full_path())

    def save_formset(self, request: HttpRequest, form: ModelForm, formset: Any, change: bool) -> None:
        if formset.model is not Interaction:
            super().save_formset(request, form, formset, change)
            return
        # New interactions typed into the inline are recorded like any other; stored ones are read-only.
        for inline_form in formset.forms:
            if inline_form.instance.pk is None and inline_form.has_changed() and inline_form.is_valid():
                data = inline_form.cleaned_data
                if data.get("DELETE"):
                    continue
                services.record_interaction(
                    lead=form.instance,
                    kind=int(data["kind"]),
                    occurred_at=data.get("occurred_at"),
                    channel=data.get("channel") or None,
                    sentiment=data.get("sentiment"),
                    logged_by=data.get("logged_by") or request_user(request),
                )
        formset.new_objects = formset.changed_objects = formset.deleted_objects = []

    def delete_model(self, request: HttpRequest, obj: Lead) -> None:
        services.delete_lead(lead=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Lead]) -> None:
        for lead in queryset:
            services.delete_lead(lead=lead)


class _Refused(Exception):
    """A service refused the admin's save; the admin shows its message and saves nothing."""


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "kind", "channel", "lead", "summary", "sentiment", "logged_by")
    list_filter = ("kind", "channel")
    search_fields = ("lead__email", "lead__last_name", "lead__company_name")
    raw_id_fields = ("lead", "logged_by")
    list_select_related = ("lead", "logged_by")
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    readonly_fields = ("created_at",)

    def get_readonly_fields(self, request: HttpRequest, obj: Interaction | None = None) -> tuple[str, ...]:
        # An interaction stays with its lead; moving it is a merge (services.move_interactions).
        return ("lead", "logged_by", "created_at") if obj is not None else ("created_at",)

    def save_model(self, request: HttpRequest, obj: Interaction, form: ModelForm, change: bool) -> None:
        data = form.cleaned_data
        if change:
            fields = {name: data[name] for name in form.changed_data if name in data}
            stored = Interaction.objects.get(pk=obj.pk)
            saved = services.update_interaction(interaction=stored, changes=fields, by=request_user(request))
        else:
            saved = services.record_interaction(
                lead=data["lead"],
                kind=int(data["kind"]),
                occurred_at=data.get("occurred_at"),
                channel=data.get("channel") or None,
                payload=data.get("payload") or {},
                sentiment=data.get("sentiment"),
                logged_by=data.get("logged_by") or request_user(request),
            )
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Interaction) -> None:
        services.delete_interactions(interactions=[obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Interaction]) -> None:
        services.delete_interactions(interactions=queryset)


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "member_count", "refreshed_at", "created_at")
    list_filter = ("kind",)
    search_fields = ("name", "description")
    readonly_fields = ("refreshed_at", "criteria_help")
    fields = ("name", "description", "kind", "criteria", "criteria_help", "refreshed_at")
    inlines = [MembershipInline]
    actions = ["refresh_segments"]

    @admin.display(description="Members")
    def member_count(self, segment: Segment) -> int:
        return segment.memberships.count()

    @admin.display(description="How to write criteria")
    def criteria_help(self, segment: Segment) -> str:
        return format_html(
            "For dynamic segments: a JSON object of lead-field lookups, e.g. "
            "<code>{}</code>. Lookups: equals, iexact, icontains, istartswith, in, isnull, gt, gte, lt, lte; "
            "custom attributes as <code>custom__name</code>.",
            '{"industry": "Retail", "employee_count__gte": 50, "country__in": ["DE", "AT"]}',
        )

    def get_inlines(self, request: HttpRequest, obj: Segment | None):
        return [MembershipInline] if obj is not None and obj.kind == SegmentKind.STATIC else []

    def save_model(self, request: HttpRequest, obj: Segment, form, change: bool) -> None:
        if not change:
            obj.created_by = request_user(request)
        super().save_model(request, obj, form, change)
        if obj.kind == SegmentKind.DYNAMIC:
            count = services.refresh_dynamic_segment(segment=obj)
            self.message_user(request, f"{obj.name}: {count} leads match the criteria.", messages.SUCCESS)

    @admin.action(description="Recompute members of selected dynamic segments")
    def refresh_segments(self, request: HttpRequest, queryset: QuerySet[Segment]) -> None:
        for segment in queryset.filter(kind=SegmentKind.DYNAMIC):
            count = services.refresh_dynamic_segment(segment=segment)
            self.message_user(request, f"{segment.name}: {count} members.", messages.SUCCESS)


@admin.register(FollowUp)
class FollowUpAdmin(admin.ModelAdmin):
    list_display = ("lead", "assigned_to", "due_at", "done_at", "note")
    list_filter = ("assigned_to", ("done_at", admin.EmptyFieldListFilter))
    search_fields = ("lead__email", "lead__last_name", "note")
    raw_id_fields = ("lead", "assigned_to", "created_by")
    list_select_related = ("lead", "assigned_to")
    date_hierarchy = "due_at"
