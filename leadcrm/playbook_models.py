"""The business's playbook (signals → next steps and talking points) and canned chat replies.

Imported by `leadcrm.models` so Django registers them with the app. Editing goes through
`leadcrm.playbook` (which also clears the cached playbook); the engine itself is pure.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from leadcrm import playbook_rules as rules


class PlaybookKind(models.TextChoices):
    SHOP = "shop", "Local shop, café or bakery"
    SERVICES = "services", "Agency or services"
    SOFTWARE = "software", "B2B software"


class Playbook(models.Model):
    """The one playbook of this CRM: which kind of business it started from, when it changed."""

    kind = models.CharField(max_length=10, choices=PlaybookKind.choices, default=PlaybookKind.SHOP)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"Playbook ({self.get_kind_display()})"


class PlaybookRule(models.Model):
    """When `signal` (with `match`) fires for a lead: say `talking_point`, suggest `next_step`."""

    playbook = models.ForeignKey(Playbook, on_delete=models.CASCADE, related_name="rules")
    position = models.PositiveSmallIntegerField(default=0)
    signal = models.CharField(max_length=20, choices=rules.SIGNAL_CHOICES)
    match = models.CharField(max_length=200, blank=True)
    talking_point = models.CharField(max_length=300, blank=True)
    next_step = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.signal} {self.match}".strip()

    def clean(self) -> None:
        problems = rules.rule_problems(self.signal, self.match, self.talking_point, self.next_step)
        if problems:
            raise ValidationError(problems)


class CannedReply(models.Model):
    """A reply template the agent panel offers; merge fields like {first_name} are filled in."""

    title = models.CharField(max_length=80, unique=True)
    text = models.TextField(max_length=2000)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]
        verbose_name_plural = "canned replies"

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        problem = rules.merge_field_problem(self.text)
        if problem:
            raise ValidationError({"text": problem})
