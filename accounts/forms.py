from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings


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
