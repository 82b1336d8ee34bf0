"""Scoring data: rules a manager writes, grade bands, rule history, and each lead's score history."""

from __future__ import annotations

from django.db import models
from django.utils.timezone import now as utc_now

from leadcrm.models import Lead


class ScoreSnapshot(models.Model):
    """One row each time a lead's scores change: the score trend line."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="score_snapshots")
    taken_at = models.DateTimeField(default=utc_now)
    rule_score = models.FloatField()
    fit_score = models.FloatField(default=0)
    engagement_score = models.FloatField(default=0)
    grade = models.CharField(max_length=4, blank=True)
    ml_probability = models.FloatField(null=True, blank=True)
    priority = models.FloatField(default=0)

    class Meta:
        ordering = ["lead", "taken_at"]
        indexes = [models.Index(fields=["lead", "taken_at"], name="snapshot_lead_time_idx")]

    def __str__(self) -> str:
        return f"{self.lead_id} at {self.taken_at:%Y-%m-%d %H:%M}: {self.rule_score:.0f}"
