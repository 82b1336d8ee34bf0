"""The manager's webhook form; the URL check itself is the service's (the SSRF guard)."""

from __future__ import annotations

import zoneinfo

from django import forms
from django.utils import timezone

from webhooks.models import Event


class WebhookForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="e.g. the system it feeds: “Slack #sales”.")
    url = forms.CharField(
        label="URL",
        max_length=500,
        help_text="An http(s) URL on the public internet; each delivery is a signed POST.",
    )
    events = forms.MultipleChoiceField(
        choices=Event.choices, widget=forms.CheckboxSelectMultiple, help_text="What it is sent."
    )
    active = forms.BooleanField(required=False, initial=True, help_text="Disabled webhooks are sent nothing.")


def reader_zone(raw: str | None) -> zoneinfo.ZoneInfo:
    """The zone the reader asked for (?tz=), or the site's; an unknown name falls back to it."""
    try:
        return zoneinfo.ZoneInfo(raw) if raw else zoneinfo.ZoneInfo(timezone.get_current_timezone_name())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(timezone.get_current_timezone_name())
