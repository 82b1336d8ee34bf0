"""Website tracking: each site's tracking mode, anonymous visitors' events, and visitor → lead links.

A visitor's events wait here, keyed by (site, visitor id), until the server itself learns who the
visitor is: a chat conversation that got its lead (the conversation token is the server's proof),
or an identity signed with the site's secret. Then they move to the lead's timeline as
interactions (`leadcrm.services.record_interactions_bulk`) and the link sends later events there
directly. The visitor id is issued and signed by this server (`tracking.visitors`): an id a
browser makes up is refused, and knowing an id links nothing by itself.
"""

from __future__ import annotations

from django.db import models

from chatbot.models import Site
from leadcrm.models import Lead


class TrackingMode(models.TextChoices):
    OFF = "off", "Off: no tracking"
    AFTER_CONSENT = "after_consent", "Only after the visitor's consent"
    ANONYMOUS_UNTIL_CONSENT = "anonymous", "Anonymous until consent (no visitor id before it)"


class TrackingSettings(models.Model):
    """The tracking settings of one chat site (its public key is the snippet's key too)."""

    site = models.OneToOneField(Site, on_delete=models.CASCADE, related_name="tracking", primary_key=True)
    mode = models.CharField(
        max_length=20,
        choices=TrackingMode.choices,
        default=TrackingMode.AFTER_CONSENT,
        help_text="Before consent: nothing is sent (after consent), or page views without any visitor "
        "id that could link them (anonymous until consent). Do-Not-Track always wins.",
    )

    class Meta:
        verbose_name = "tracking settings"
        verbose_name_plural = "tracking settings"
        permissions = [("ingest_events", "Can send events through the batch events API")]

    def __str__(self) -> str:
        return f"Tracking of {self.site}: {self.get_mode_display()}"


class EventType(models.IntegerChoices):
    PAGE_VIEW = 1, "Page view"
    FORM_SUBMIT = 2, "Form submitted"
    DOWNLOAD = 3, "Download"
    CUSTOM = 4, "Custom event"
    TIME_ON_PAGE = 5, "Time on page"  # added to its page view's payload when moved


class TrackedEvent(models.Model):
    """One event of a visitor not (yet) known as a lead. visitor_id "" = anonymous for good."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    visitor_id = models.CharField(max_length=64, blank=True)
    event_id = models.CharField(max_length=64)
    type = models.PositiveSmallIntegerField(choices=EventType.choices)
    occurred_at = models.DateTimeField()
    payload = models.JSONField(default=dict)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["site", "visitor_id", "event_id"], name="tracked_event_once"),
        ]
        indexes = [models.Index(fields=["received_at"], name="tracked_event_received_idx")]

    def __str__(self) -> str:
        return f"{self.get_type_display()} on site {self.site_id}"


class VisitorLink(models.Model):
    """The server learned that this visitor id (of this site) is this lead."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    visitor_id = models.CharField(max_length=64)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="+")
    linked_at = models.DateTimeField()
    via = models.CharField(max_length=20)  # "chat" or "signed_identity"

    class Meta:
        constraints = [models.UniqueConstraint(fields=["site", "visitor_id"], name="visitor_link_once")]

    def __str__(self) -> str:
        return f"Visitor of site {self.site_id} → lead {self.lead_id}"
