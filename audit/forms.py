"""The audit page's filters. Unknown values are form errors that say what is allowed."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from audit.models import Action
from audit.triggers import TRACKED

TARGET_TYPES = sorted({"leadcrm.lead", "url", *(spec.model._meta.label_lower for spec in TRACKED)})
# A short list of zones covers most readers; any IANA name typed in the URL works too.
COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Lisbon",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
)


class TrailFilterForm(forms.Form):
    actor = forms.CharField(label="Who (username)", required=False, max_length=150)
    action = forms.ChoiceField(label="Action", choices=[("", "Any action"), *Action.choices], required=False)
    target_type = forms.ChoiceField(
        label="Object type", choices=[("", "Any type"), *((t, t) for t in TARGET_TYPES)], required=False
    )
    target_id = forms.CharField(label="Object id", required=False, max_length=64)
    lead = forms.IntegerField(label="Lead (person) id", required=False, min_value=1)
    since = forms.DateField(
        label="From (date)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(label="To (date)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    tz = forms.CharField(label="Show times in", required=False, max_length=64)

    def clean_tz(self) -> str:
        name = self.cleaned_data.get("tz") or timezone.get_current_timezone_name()
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError(
                f"Unknown time zone {name!r}; use an IANA name like Europe/Berlin."
            ) from None
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date; swap them.")
        return data

    def zone(self) -> zoneinfo.ZoneInfo:
        name = self.cleaned_data.get("tz") if self.is_bound and self.is_valid() else None
        return zoneinfo.ZoneInfo(name or timezone.get_current_timezone_name())

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """The date range as aware datetimes in the reader's zone: [since 00:00, until+1 00:00)."""
        zone = self.zone()
        since, until = self.cleaned_data.get("since"), self.cleaned_data.get("until")
        start = datetime.combine(since, time.min, tzinfo=zone) if since else None
        end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone) if until else None
        return start, end
