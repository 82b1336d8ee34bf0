"""Admin for scoring: managers write rules and grade bands; every change is kept and triggers a recompute."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from leadcrm.http import request_user
from leadcrm.models import InteractionKind
from scoring import services
from scoring.models import RULE_EDITABLE_FIELDS, GradeBand, RecomputeRun, Rule, RuleChange
from scoring.selectors import latest_run


class RuleForm(forms.ModelForm):
    kinds = forms.TypedMultipleChoiceField(
        choices=InteractionKind.choices,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Interaction kinds",
        help_text="Engagement rules count these kinds of interactions.",
    )

    class Meta:
        model = Rule
        fields = list(RULE_EDITABLE_FIELDS)

    def clean_kinds(self) -> list[int]:
        return sorted(set(self.cleaned_data.get("kinds") or []))


class RuleChangeInline(admin.TabularInline):
    model = RuleChange
    fk_name = "rule"
    extra = 0
    can_delete = False
    fields = ("changed_at", "action", "changed_by", "before", "after")
    readonly_fields = fields
    ordering = ("-changed_at",)
    max_num = 0
    verbose_name_plural = "Change history"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    form = RuleForm
    list_display = ("name", "category", "points_display", "active", "reason", "error_display", "updated_at")
    list_filter = ("category", "active")
    search_fields = ("name", "reason", "field", "pattern")
    list_editable = ("active",)
    readonly_fields = ("last_error", "last_error_at", "created_at", "updated_at")
    inlines = [RuleChangeInline]
    change_list_template = "admin/scoring/rule/change_list.html"
    change_form_template = "admin/scoring/rule/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "category", "points", "reason", "active")}),
        (
            "Fit: compare a lead field",
            {
                "fields": ("field", "operator", "value"),
                "description": "For demographic / firmographic rules, e.g. job_title contains director.",
            },
        ),
        (
            "Engagement: count interactions",
            {
                "fields": ("kinds", "pattern", "window_days", ("threshold", "cap"), "half_life_days"),
                "description": "Points per occurrence (optionally capped), or once when the count reaches "
                "the threshold. The window also limits interaction-based spam signals.",
            },
        ),
        ("Negative / spam signal", {"fields": ("detector",)}),
        (
            "Status",
            {"classes": ("collapse",), "fields": ("last_error", "last_error_at", "created_at", "updated_at")},
        ),
    )

    @admin.display(description="Points", ordering="points")
    def points_display(self, rule: Rule) -> str:
        return f"{rule.points:+d}"

    @admin.display(description="Problem")
    def error_display(self, rule: Rule) -> str:
        if not rule.last_error:
            return ""
        return format_html('<span class="scoring-error" title="{}">⚠ failed, skipped</span>', rule.last_error)

    def save_model(self, request: HttpRequest, obj: Rule, form: Any, change: bool) -> None:
        before = latest_run()
        services.save_rule(rule=obj, by=request_user(request))
        # Said after commit, behind the recompute's own enqueue: with an eager worker (the demo)
        # the recompute has already run by then, and the message must say so, not "being recomputed".
        transaction.on_commit(lambda: messages.info(request, recompute_message(before)))

    def delete_model(self, request: HttpRequest, obj: Rule) -> None:
        services.delete_rule(rule=obj, by=request_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Rule]) -> None:
        for rule in queryset:
            services.delete_rule(rule=rule, by=request_user(request))

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        formset.save(commit=False)  # the history inline is read-only

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        extra_context = {**(extra_context or {}), "recompute_run": latest_run()}
        return super().changelist_view(request, extra_context)


class GradeBandForm(forms.ModelForm):
    class Meta:
        model = GradeBand
        fields = ["dimension", "label", "min_score"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        label, dimension = data.get("label", ""), data.get("dimension")
        if dimension == "fit" and label and not label.isalpha():
            raise ValidationError({"label": "Fit bands are letters: A, B, C…"})
        if dimension == "engagement" and label and not label.isdigit():
            raise ValidationError({"label": "Engagement bands are digits: 1, 2, 3…"})
        return data


def recompute_message(before: RecomputeRun | None) -> str:
    """What a rule save did to the scores, honestly: finished (with figures), under way, or nothing."""
    run = latest_run()
    if run is None or (before is not None and run.pk == before.pk and not run.is_active):
        return "Saved. Nothing changed that affects scores, so nothing was recomputed."
    if run.is_active:
        return (
            f"Scores are being recomputed ({run.percent}% done); progress shows at the top of the rules list, "
            "and the old scores stay visible until it finishes."
        )
    if run.status == RecomputeRun.Status.FAILED:
        return (
            "The recompute after this change failed; the rules list says why. Scores were left as they were."
        )
    return f"Scores recomputed: {run.total_leads} leads, {run.changed_leads} changed."


@admin.register(GradeBand)
class GradeBandAdmin(admin.ModelAdmin):
    form = GradeBandForm
    list_display = ("dimension", "label", "min_score")
    list_filter = ("dimension",)
    ordering = ("dimension", "-min_score")

    def save_model(self, request: HttpRequest, obj: GradeBand, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        services.schedule_recompute(reason="Grade bands changed", by=request_user(request))

    def delete_model(self, request: HttpRequest, obj: GradeBand) -> None:
        super().delete_model(request, obj)
        services.schedule_recompute(reason="Grade bands changed", by=request_user(request))


@admin.register(RuleChange)
class RuleChangeAdmin(admin.ModelAdmin):
    list_display = ("changed_at", "rule_name", "action", "changed_by")
    list_filter = ("action",)
    search_fields = ("rule_name",)
    readonly_fields = ("rule", "rule_name", "action", "changed_by", "changed_at", "before", "after")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RecomputeRun)
class RecomputeRunAdmin(admin.ModelAdmin):
    list_display = ("created_at", "reason", "status", "percent", "changed_leads", "finished_at")
    list_filter = ("status",)
    readonly_fields = [f.name for f in RecomputeRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
