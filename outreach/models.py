"""Emails a salesperson sent from LeadCRM: the delivery state next to the timeline entry.

The subject and text live in the Interaction's payload (the timeline shows them, and erasing a
person clears them there); this row only knows the state of the send and of open tracking.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.timezone import now as utc_now

from leadcrm.models import Interaction, Lead


class EmailStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class OutboundEmail(models.Model):
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="outbound_emails")
    interaction = models.OneToOneField(Interaction, on_delete=models.CASCADE, related_name="outbound_email")
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tracked = models.BooleanField(
        default=False, help_text="Open pixel and click links: only with the lead's marketing consent."
    )
    status = models.CharField(max_length=8, choices=EmailStatus.choices, default=EmailStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=utc_now)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_open_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbound_status_idx")]

    def __str__(self) -> str:
        return f"Email {self.pk} to lead {self.lead_id} ({self.status})"
