"""Follow-up sequences: steps a manager defines, the leads going through them, and each step's run.

A lead is in at most one active sequence at a time (a partial unique index), so two sequences never
email the same person in the same week. A step runs at most once per enrolment: a StepRun row,
unique per (enrolment, step), is written in the same transaction as the step's email or task.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now as utc_now

from leadcrm.models import FollowUp, Interaction, Lead, Segment


class ConsentNeeded(models.TextChoices):
    MARKETING = "marketing", "Marketing consent (offers, news, nurturing)"
    CONTACT = "contact", "Contact consent (about their own request)"


class Trigger(models.TextChoices):
    NONE = "", "None: enrol by hand or from a segment"
    CALLBACK = "callback_requested", "A visitor asks for a callback in the chat"


class Sequence(models.Model):
    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    active = models.BooleanField(
        default=True, help_text="Paused sequences take no new leads, and their steps wait."
    )
    consent_needed = models.CharField(
        max_length=12, choices=ConsentNeeded.choices, default=ConsentNeeded.MARKETING
    )
    trigger = models.CharField(max_length=24, choices=Trigger.choices, blank=True, default="")
    # New members of this segment (added after auto_segment_since) are enrolled by the beat task.
    auto_segment = models.ForeignKey(
        Segment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    auto_segment_since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=utc_now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(consent_needed__in=ConsentNeeded.values), name="sequence_consent_valid"
            ),
            models.CheckConstraint(condition=Q(trigger__in=Trigger.values), name="sequence_trigger_valid"),
        ]

    def __str__(self) -> str:
        return self.name


class StepKind(models.TextChoices):
    EMAIL = "email", "Send an email"
    WAIT = "wait", "Wait"
    TASK = "task", "Create a task"


class WaitUnit(models.TextChoices):
    HOURS = "hours", "hours"
    DAYS = "days", "days"


class Step(models.Model):
    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=StepKind.choices)
    # Email: the business's own template with merge fields ({first_name}, {company}, …).
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True)
    # Wait: N hours or days before the next step.
    wait_amount = models.PositiveIntegerField(null=True, blank=True)
    wait_unit = models.CharField(max_length=8, choices=WaitUnit.choices, default=WaitUnit.DAYS)
    # Task: a follow-up for the lead's owner (or whoever the routing rule picks), due after N hours.
    task_note = models.CharField(max_length=1000, blank=True)
    task_due_hours = models.PositiveIntegerField(default=24)

    class Meta:
        ordering = ["sequence", "position"]
        constraints = [
            models.UniqueConstraint(fields=["sequence", "position"], name="step_position_unique"),
            models.CheckConstraint(condition=Q(kind__in=StepKind.values), name="step_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.sequence} step {self.position}: {self.summary}"

    @property
    def summary(self) -> str:
        if self.kind == StepKind.EMAIL:
            return f"Email “{self.subject}”"
        if self.kind == StepKind.WAIT:
            return f"Wait {self.wait_amount} {self.get_wait_unit_display()}"
        return f"Task: {self.task_note}" if self.task_note else "Task for the owner"


class EnrolmentState(models.TextChoices):
    ACTIVE = "active", "Active"
    FINISHED = "finished", "Finished"
    EXITED = "exited", "Stopped"


class ExitReason(models.TextChoices):
    REPLIED = "replied", "replied"
    CONVERTED = "converted", "converted (won)"
    CLOSED = "closed", "closed (lost or disqualified)"
    UNSUBSCRIBED = "unsubscribed", "unsubscribed"
    CONSENT_WITHDRAWN = "consent_withdrawn", "consent withdrawn"
    ERASED = "erased", "personal data erased"
    STOPPED = "stopped", "stopped by hand"


class EnrolSource(models.TextChoices):
    HAND = "hand", "By hand"
    SEGMENT = "segment", "From a segment"
    TRIGGER = "trigger", "By a trigger"


class Enrolment(models.Model):
    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="enrolments")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="sequence_enrolments")
    state = models.CharField(max_length=10, choices=EnrolmentState.choices, default=EnrolmentState.ACTIVE)
    exit_reason = models.CharField(max_length=20, choices=ExitReason.choices, blank=True, default="")
    source = models.CharField(max_length=10, choices=EnrolSource.choices, default=EnrolSource.HAND)
    enrolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    enrolled_at = models.DateTimeField(default=utc_now)
    # The next step to run is the first one at this position or after it, at next_run_at.
    next_position = models.PositiveIntegerField(default=0)
    next_run_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-enrolled_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["lead"], condition=Q(state="active"), name="enrolment_one_active_per_lead"
            ),
            models.CheckConstraint(
                condition=Q(state__in=EnrolmentState.values), name="enrolment_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(exit_reason="") | Q(exit_reason__in=ExitReason.values),
                name="enrolment_reason_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["next_run_at"], condition=Q(state="active"), name="enrolment_due_idx"),
            models.Index(fields=["sequence", "state"], name="enrolment_sequence_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.lead} in {self.sequence} ({self.state})"

    @property
    def outcome_text(self) -> str:
        """ "active", "finished" or "stopped: replied" — what the pages show."""
        if self.state == EnrolmentState.EXITED:
            return f"stopped: {self.get_exit_reason_display()}"
        return self.get_state_display().lower()


class RunOutcome(models.TextChoices):
    SENT = "sent", "Email queued"
    SKIPPED = "skipped", "Skipped"
    TASK = "task", "Task created"
    WAITED = "waited", "Waiting"
    FAILED = "failed", "Failed"


class StepRun(models.Model):
    """One step run for one enrolment: written once, in the transaction that sends or creates it."""

    enrolment = models.ForeignKey(Enrolment, on_delete=models.CASCADE, related_name="runs")
    step = models.ForeignKey(Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=StepKind.choices)
    outcome = models.CharField(max_length=8, choices=RunOutcome.choices)
    reason = models.CharField(max_length=300, blank=True)
    interaction = models.ForeignKey(
        Interaction, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    follow_up = models.ForeignKey(
        FollowUp, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ran_at = models.DateTimeField(default=utc_now)

    class Meta:
        ordering = ["ran_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["enrolment", "step"], name="step_run_once"),
        ]

    def __str__(self) -> str:
        return f"Step {self.position} of enrolment {self.enrolment_id}: {self.outcome}"
