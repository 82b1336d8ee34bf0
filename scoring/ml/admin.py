"""Admin for predictive scoring: versions with rollback, a retrain button with progress, settings."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse

from scoring.ml import services
from scoring.ml.models import MlSettings, ModelVersion, ProtectedAttribute, TrainingRun


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    change_list_template = "admin/ml/modelversion/change_list.html"
    list_display = (
        "id",
        "created_at",
        "algorithm",
        "training_rows",
        "cv_roc_auc",
        "time_split_roc_auc",
        "status",
        "is_promoted",
    )
    list_filter = ("status", "algorithm")
    exclude = ("artifact",)
    readonly_fields = (
        "created_at",
        "algorithm",
        "features",
        "training_rows",
        "won",
        "lost",
        "metrics",
        "status",
        "is_promoted",
        "promoted_at",
        "decision",
        "failure",
        "failed_at",
    )
    actions = ("roll_back_to_version",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("artifact")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions come from training only

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="CV ROC-AUC")
    def cv_roc_auc(self, obj: ModelVersion) -> str:
        value = obj.metrics.get("roc_auc")
        return f"{value:.3f}" if value is not None else "—"

    @admin.display(description="Time-split ROC-AUC")
    def time_split_roc_auc(self, obj: ModelVersion) -> str:
        value = (obj.metrics.get("time_split") or {}).get("roc_auc")
        return f"{value:.3f}" if value is not None else "—"

    @admin.action(description="Roll back to (promote) the selected version")
    def roll_back_to_version(self, request: HttpRequest, queryset: QuerySet) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to put in use.", messages.ERROR)
            return
        version = queryset.get()
        services.rollback(to=version)
        self.message_user(request, f"{version} is now in use; every lead is being rescored with it.")

    def get_urls(self) -> list:
        urls = [
            path("retrain/", self.admin_site.admin_view(self.retrain_view), name="ml_modelversion_retrain"),
        ]
        return urls + super().get_urls()

    def retrain_view(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and self.has_view_permission(request):
            run = services.request_retrain()
            self.message_user(request, f"Training run #{run.pk} queued; its progress shows below.")
        return HttpResponseRedirect(reverse("admin:ml_modelversion_changelist"))

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        settings = MlSettings.load()
        won, lost = services.outcome_counts()
        needed = settings.min_outcomes_per_class
        extra = {
            "last_run": TrainingRun.objects.first(),
            "cold_start": (
                services.cold_start_message(won, lost, needed)
                if (won < needed or lost < needed)
                and not ModelVersion.objects.filter(is_promoted=True).exists()
                else ""
            ),
        }
        return super().changelist_view(request, {**extra, **(extra_context or {})})


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "requested_at", "state", "progress", "message", "version")
    list_filter = ("state",)
    readonly_fields = ("requested_at", "started_at", "finished_at", "state", "progress", "message", "version")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ProtectedAttribute)
class ProtectedAttributeAdmin(admin.ModelAdmin):
    list_display = ("name", "note")
    search_fields = ("name",)


@admin.register(MlSettings)
class MlSettingsAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "blend_weight",
        "min_outcomes_per_class",
        "promotion_tolerance",
        "drift_tolerance",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not MlSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
