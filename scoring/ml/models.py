"""Predictive scoring data: settings, protected attributes, model versions, training runs, predictions."""

from __future__ import annotations

from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.timezone import now as utc_now

DEFAULT_PROTECTED = (  # seeded by migration 0002; managers edit the list in the admin
    "gender",
    "sex",
    "age",
    "date_of_birth",
    "birth_date",
    "birthday",
    "nationality",
    "ethnicity",
    "race",
    "religion",
    "marital_status",
    "disability",
    "sexual_orientation",
)


class MlSettings(models.Model):
    """The manager's settings for predictive scoring (one row)."""

    blend_weight = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Share of the model's probability in the queue priority: 0 = rules only, 1 = model only.",
    )
    min_outcomes_per_class = models.PositiveIntegerField(
        default=30, help_text="Train only with at least this many won and this many lost leads."
    )
    promotion_tolerance = models.FloatField(
        default=0.005,
        validators=[MinValueValidator(0), MaxValueValidator(0.1)],
        help_text="A new model is promoted unless its held-out ROC-AUC is lower than the current one's by more.",
    )
    drift_tolerance = models.FloatField(
        default=0.05, help_text="Warn when live ROC-AUC falls this far below the training estimate."
    )

    class Meta:
        verbose_name = "predictive scoring settings"
        verbose_name_plural = "predictive scoring settings"

    def __str__(self) -> str:
        return "Predictive scoring settings"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.pk = 1  # a singleton: there is one blend for the whole CRM
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> MlSettings:
        return cls.objects.get_or_create(pk=1)[0]


class ProtectedAttribute(models.Model):
    """A lead field or custom attribute the model must never learn from (e.g. gender)."""

    name = models.CharField(
        max_length=100, unique=True, help_text="Lead field or custom attribute name; case and spaces ignored."
    )
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class VersionStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    PROMOTED = "promoted", "Promoted (in use)"
    REJECTED = "rejected", "Rejected by the promotion gate"
    RETIRED = "retired", "Retired"
    FAILED = "failed", "Unavailable: could not be loaded or failed to predict"


class ModelVersion(models.Model):
    """One trained model: what it learned from, how good it was, and the fitted artifact itself."""

    created_at = models.DateTimeField(default=utc_now)
    algorithm = models.CharField(max_length=40)
    features = models.JSONField(default=list)
    training_rows = models.PositiveIntegerField()
    won = models.PositiveIntegerField(default=0)
    lost = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, help_text="Cross-validated, held-out and time-split figures.")
    # The pickled scorer lives in the database so every web and worker machine can load it.
    artifact = models.BinaryField()
    status = models.CharField(max_length=12, choices=VersionStatus.choices, default=VersionStatus.CANDIDATE)
    is_promoted = models.BooleanField(default=False)
    promoted_at = models.DateTimeField(null=True, blank=True)
    decision = models.TextField(blank=True, help_text="Why it was promoted or not.")
    failure = models.TextField(
        blank=True, default="", db_default="", help_text="Why it could not be used, if it failed."
    )
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_promoted"], condition=Q(is_promoted=True), name="ml_one_promoted"
            )
        ]

    def __str__(self) -> str:
        return f"Model #{self.pk} ({self.algorithm}, {self.created_at:%Y-%m-%d})"

    @property
    def roc_auc(self) -> float | None:
        return self.metrics.get("roc_auc")


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    COLD_START = "cold_start", "Not enough outcomes yet"
    FAILED = "failed", "Failed"


class TrainingRun(models.Model):
    """One retrain request and its progress (the admin button polls it)."""

    requested_at = models.DateTimeField(default=utc_now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=12, choices=RunState.choices, default=RunState.QUEUED)
    progress = models.FloatField(default=0)
    message = models.CharField(max_length=300, blank=True)
    version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"Training run {self.pk}: {self.get_state_display()}"

    @property
    def is_active(self) -> bool:
        return self.state in (RunState.QUEUED, RunState.RUNNING)
