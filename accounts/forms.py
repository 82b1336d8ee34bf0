from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from leadcrm.models import StaffProfile


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What the token is for, e.g. “website form import”. You see it in the list."
    )
    days = forms.IntegerField(
        label="Valid for (days)",
        min_value=1,
        help_text="The token stops working after this many days; create a new one before then.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # From settings at request time, so tests and operators can change the limits.
        self.fields["days"].initial = settings.API_TOKEN_DEFAULT_DAYS
        self.fields["days"].widget.attrs.update({"min": 1, "max": settings.API_TOKEN_MAX_DAYS})

    def clean_days(self) -> int:
        days: int = self.cleaned_data["days"]
        if days > settings.API_TOKEN_MAX_DAYS:
            raise forms.ValidationError(f"A token must expire within {settings.API_TOKEN_MAX_DAYS} days.")
        return days


def _zone_choices() -> list[tuple[str, str]]:
    from accounts.time_zones import zone_names

    return [
        ("", "My browser's time zone"),
        *((name, name.replace("_", " ")) for name in sorted(zone_names())),
    ]


class StaffProfileForm(forms.ModelForm):
    """The user's own settings (leadcrm.models.StaffProfile), saved through
    leadcrm.services.update_staff_profile. Add a setting here by adding its field to `fields`."""

    class Meta:
        model = StaffProfile
        fields = ["timezone"]
        labels = {"timezone": "Time zone"}
        help_texts = {
            "timezone": "Every time in LeadCRM is shown in this zone, labelled. Blank: your browser's zone."
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["timezone"].widget = forms.Select(choices=_zone_choices())

    def point_at_errors(self) -> None:
        """A refused field describes itself by its error and takes the focus (screen readers hear it)."""
        for name in self.errors:
            if name in self.fields:
                auto_id = self[name].auto_id
                self.fields[name].widget.attrs.update(
                    {"aria-describedby": f"{auto_id}_helptext {auto_id}-err", "autofocus": True}
                )
