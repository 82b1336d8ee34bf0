"""Outgoing webhooks: the URLs managers register, and every delivery of an event to one of them.

A Delivery row is the outbox: it is written in the transaction of the change that caused the event,
before any task is queued, so an event survives a broker outage (the sweep re-queues due rows).
"""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now as utc_now


class Event(models.TextChoices):
    LEAD_CREATED = "lead.created", "Lead created"
    GRADE_CHANGED = "lead.grade_changed", "Grade changed"
    BECAME_HOT = "lead.became_hot", "Lead became hot"
    STATUS_CHANGED = "lead.status_changed", "Status changed"
    LEAD_WON = "lead.won", "Lead won"
    LEAD_LOST = "lead.lost", "Lead lost"
    CHAT_HANDED_OFF = "chat.handed_off", "Chat handed off to a person"
    FOLLOW_UP_OVERDUE = "follow_up.overdue", "Follow-up overdue"


TEST_EVENT = "webhook.test"  # "Send test event": to one webhook, whatever it subscribes to


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class Webhook(models.Model):
    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500, help_text="Where events are POSTed (http or https).")
    events = models.JSONField(default=list, help_text="Event names this URL receives.")
    secret = models.CharField(max_length=80, default=new_secret, help_text="Signs every delivery.")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for its first attempt or a retry
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed"  # gave up after WEBHOOKS_MAX_ATTEMPTS, or refused (SSRF guard)


class Delivery(models.Model):
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    event_id = models.UUIDField(
        default=uuid.uuid4, help_text="The same for a replay: receivers dedupe on it."
    )
    dedupe_key = models.CharField(max_length=80, blank=True, help_text="At most one delivery per webhook.")
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=utc_now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    replay_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx"),
            models.Index(fields=["webhook", "-created_at"], name="delivery_webhook_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["webhook", "dedupe_key"], condition=~Q(dedupe_key=""), name="delivery_once_per_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook_id} ({self.status})"


class Watermark(models.Model):
    """How far a periodic scan got (the follow-up overdue scan): the next run starts there."""

    name = models.CharField(max_length=40, unique=True)
    value = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} @ {self.value:%Y-%m-%d %H:%M:%S}"
