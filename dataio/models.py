"""An import job: the uploaded file, how its columns map to lead fields, and what happened per row."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.timezone import now as utc_now


class OnDuplicate(models.TextChoices):
    UPDATE = "update", "Update the lead already in LeadCRM"
    SKIP = "skip", "Skip the row"


class ImportJob(models.Model):
    class Status(models.TextChoices):
        MAPPING = "mapping", "Choose the columns"
        CHECKING = "checking", "Dry run queued"
        CHECKED = "checked", "Dry run done"
        QUEUED = "queued", "Import queued"
        RUNNING = "running", "Importing"
        DONE = "done", "Imported"
        FAILED = "failed", "Failed"

    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=utc_now)
    # What parsing found: column names, a few sample values per column, the encoding note.
    headers = models.JSONField(default=list, blank=True)
    samples = models.JSONField(default=list, blank=True)
    notes = models.JSONField(default=list, blank=True)
    total_rows = models.PositiveIntegerField(default=0)
    # One target per column: a lead field, "custom:NAME", or "" (ignored).
    mapping = models.JSONField(default=list, blank=True)
    on_duplicate = models.CharField(max_length=10, choices=OnDuplicate.choices, default=OnDuplicate.SKIP)
    with_outcomes = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.MAPPING)
    dry_run = models.BooleanField(default=True, help_text="The last run only checked, wrote nothing.")
    done_rows = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    refused = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "queued_at"], name="importjob_status_idx")]

    def __str__(self) -> str:
        return f"Import #{self.pk} ({self.original_name})"

    @property
    def is_busy(self) -> bool:
        return self.status in (self.Status.CHECKING, self.Status.QUEUED, self.Status.RUNNING)

    @property
    def percent(self) -> int:
        return int(100 * self.done_rows / self.total_rows) if self.total_rows else 0


class ImportRowResult(models.Model):
    """What the last dry run or run did with one row: its line in the file and why."""

    class Action(models.TextChoices):
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        SKIP = "skip", "Skip"
        REFUSE = "refuse", "Refuse"

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="rows")
    line = models.PositiveIntegerField()
    action = models.CharField(max_length=10, choices=Action.choices)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["line"]
        indexes = [models.Index(fields=["job", "action", "line"], name="importrow_job_idx")]

    def __str__(self) -> str:
        return f"line {self.line}: {self.action}"
