"""Forms of the privacy pages: find a person, confirm an erasure, decline a request, record consent."""

from __future__ import annotations

from typing import Any

from django import forms

from leadcrm.models import ConsentPurpose
from privacy.models import RequestStatus


class FindPersonForm(forms.Form):
    email = forms.EmailField(label="Email of the person", max_length=254)


class EraseConfirmForm(forms.Form):
    confirm = forms.CharField(
        label="Type ERASE to confirm",
        max_length=10,
        help_text="This cannot be undone. The lead stays in your counts, without anything that names the person.",
    )

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip()
        if value.upper() != "ERASE":
            raise forms.ValidationError("Type the word ERASE to confirm; nothing was erased.")
        return value


class DeclineForm(forms.Form):
    note = forms.CharField(
        label="Why is it declined?",
        max_length=300,
        help_text="e.g. “Open invoice: we must keep billing records for 10 years.” No personal details.",
    )


REQUEST_FILTERS = [("open", "Waiting"), ("done", "Done"), ("declined", "Declined"), ("all", "All")]


class RequestFilterForm(forms.Form):
    status = forms.ChoiceField(label="Show", choices=REQUEST_FILTERS, required=False)

    def status_value(self) -> str | None:
        """The status to list (None: all); unknown values fall back to the waiting ones."""
        value = self.cleaned_data.get("status") if self.is_valid() else RequestStatus.OPEN
        return None if value == "all" else (value or RequestStatus.OPEN)


class ConsentForm(forms.Form):
    purpose = forms.ChoiceField(label="Consent to", choices=ConsentPurpose.choices)
    granted = forms.TypedChoiceField(
        label="They",
        choices=[("yes", "gave it"), ("no", "withdrew it")],
        coerce=lambda value: value == "yes",
    )
    text = forms.CharField(
        label="How and where",
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="The wording they agreed to, or what they said and when (e.g. “Asked to stop emails, phone call 3 May”).",
    )

    def clean_text(self) -> Any:
        return " ".join(self.cleaned_data["text"].split())
