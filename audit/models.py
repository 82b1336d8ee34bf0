"""The audit trail: one append-only table of who did what to which record, and when.

Rows come from two writers:
- the application (`audit.services.record`): views, exports, erasures, refused accesses;
- PostgreSQL triggers (`audit.triggers`): every INSERT/UPDATE/DELETE of the tracked tables,
  whatever wrote it (the ORM, `.update()`, raw SQL), with the changed columns before and after.
"""

from __future__ import annotations

import contextvars
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils.timezone import now as utc_now


class Action(models.TextChoices):
    VIEWED = "viewed", "Viewed"
    EXPORTED = "exported", "Exported"
    CREATED = "created", "Created"
    CHANGED = "changed", "Changed"
    DELETED = "deleted", "Deleted"
    ERASED = "erased", "Erased"
    REFUSED = "refused", "Refused access"


class Source(models.TextChoices):
    APP = "app", "Application"
    DATABASE = "db", "Database trigger"


class AppendOnlyError(Exception):
    """Audit rows are never changed or deleted (only `audit.services.scrub_person` may)."""


class EntryQuerySet(models.QuerySet["Entry"]):
    def update(self, **kwargs: Any) -> int:
        _refuse_unless_scrubbing()
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        _refuse_unless_scrubbing()
        return super().delete()


# Set by audit.services.scrub_person for the duration of the scrub: the one writer allowed to
# change audit rows (the database trigger checks a transaction-local setting of its own).
scrub_in_progress: contextvars.ContextVar[bool] = contextvars.ContextVar("audit_scrubbing", default=False)


def _refuse_unless_scrubbing() -> None:
    if not scrub_in_progress.get():
        raise AppendOnlyError("The audit trail is append-only.")


class Entry(models.Model):
    at = models.DateTimeField(default=utc_now)
    # No database constraint: a user who is deleted later keeps their rows (and their name, below).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=150, blank=True, help_text="The username at the time.")
    action = models.CharField(max_length=10, choices=Action.choices)
    target_type = models.CharField(max_length=60, help_text='app_label.model, e.g. "leadcrm.lead".')
    target_id = models.CharField(max_length=64, blank=True)
    # The person (lead) the row is about: the lead itself, or the lead of a consent or follow-up.
    # Used by the lead's own trail and by the erasure scrub.
    lead_id = models.BigIntegerField(null=True, blank=True)
    summary = models.CharField(max_length=300, blank=True)
    # Changed columns only: before holds their old values, after their new ones.
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    path = models.CharField(max_length=300, blank=True, help_text="Request path, without its query string.")
    method = models.CharField(max_length=8, blank=True)
    source = models.CharField(max_length=3, choices=Source.choices, default=Source.APP)
    # Groups the rows of one request or task (the pghistory context id).
    context_id = models.UUIDField(null=True, blank=True)

    objects = EntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["-at", "-id"], name="audit_at_idx"),
            models.Index(fields=["actor", "-at"], name="audit_actor_idx"),
            models.Index(fields=["target_type", "target_id"], name="audit_target_idx"),
            models.Index(
                fields=["lead_id"], name="audit_lead_idx", condition=models.Q(lead_id__isnull=False)
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(action__in=Action.values), name="audit_action_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_label or 'system'} {self.action} {self.target_type} {self.target_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            _refuse_unless_scrubbing()
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        _refuse_unless_scrubbing()
        return super().delete(*args, **kwargs)

    @property
    def changes(self) -> list[tuple[str, Any, Any]]:
        """(column, before, after) for every column either side names, sorted by column."""
        before = self.before if isinstance(self.before, dict) else {}
        after = self.after if isinstance(self.after, dict) else {}
        return [(key, before.get(key), after.get(key)) for key in sorted({*before, *after})]
