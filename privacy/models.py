"""A person's request about their data, made from the website chat: a manager sees it and acts.

Export requests are answered at once in the widget (the visitor downloads their data), so only
erasure requests wait here; an export row is kept when a manager exports on someone's behalf.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now as utc_now

from leadcrm.models import Lead


class RequestKind(models.TextChoices):
    EXPORT = "export", "Copy of their data"
    ERASURE = "erasure", "Erase their data"


class RequestStatus(models.TextChoices):
    OPEN = "open", "Waiting for a manager"
    DONE = "done", "Done"
    DECLINED = "declined", "Declined"


class PrivacyRequest(models.Model):
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="privacy_requests")
    kind = models.CharField(max_length=10, choices=RequestKind.choices)
    status = models.CharField(max_length=10, choices=RequestStatus.choices, default=RequestStatus.OPEN)
    # Where it came from: "widget" (the visitor asked in the chat) or "manager".
    channel = models.CharField(max_length=20, default="widget")
    created_at = models.DateTimeField(default=utc_now)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    # Why a request was declined (shown to managers only; no personal data).
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=RequestKind.values), name="privacy_request_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=RequestStatus.values), name="privacy_request_status_valid"
            ),
            # One open request of a kind per person: asking twice does not queue twice.
            models.UniqueConstraint(
                fields=["lead", "kind"],
                condition=Q(status="open"),
                name="privacy_request_one_open_per_kind",
            ),
        ]
        indexes = [models.Index(fields=["status", "-created_at"], name="privacy_request_status_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for lead #{self.lead_id} ({self.get_status_display()})"
