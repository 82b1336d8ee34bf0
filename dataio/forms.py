"""Forms of the import pages: the upload, the column mapping, and the dry-run row filter."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from dataio import columns
from dataio.models import ImportJob, OnDuplicate
from dataio.parsing import max_bytes, too_big_message


class UploadForm(forms.Form):
    file = forms.FileField(
        label="CSV or Excel file",
        help_text="A .csv (comma, semicolon or tab separated; UTF-8 or Windows encodings) or .xlsx file "
        "with a header row, up to the upload limit.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.tsv,.xlsx,.xlsm"}),
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > max_bytes():
            raise forms.ValidationError(too_big_message(upload.size))
        return upload


class MappingForm(forms.Form):
    """One select per column of the file, plus the options: duplicates and outcomes."""

    on_duplicate = forms.ChoiceField(
        label="When an email is already in LeadCRM",
        choices=OnDuplicate.choices,
        widget=forms.RadioSelect,
    )
    with_outcomes = forms.BooleanField(
        label="The file has past outcomes (won or lost, with a date): import them so the model can learn",
        required=False,
    )

    def __init__(self, *args: Any, job: ImportJob, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {"on_duplicate": job.on_duplicate, "with_outcomes": job.with_outcomes},
        )
        super().__init__(*args, **kwargs)
        self.job = job
        base = columns.target_choices(outcomes=True)
        for index, header in enumerate(job.headers):
            current = job.mapping[index] if index < len(job.mapping) else ""
            custom = columns.custom_target(header)
            choices = [*base, (custom, f"Custom attribute “{custom.removeprefix(columns.CUSTOM)}”")]
            if current and current not in dict(choices):
                choices.append((current, current))
            self.fields[f"col_{index}"] = forms.ChoiceField(
                label=header, choices=choices, required=False, initial=current
            )

    def column_fields(self) -> list[tuple[forms.BoundField, list[str]]]:
        samples = self.job.samples
        return [
            (self[f"col_{i}"], samples[i] if i < len(samples) else []) for i in range(len(self.job.headers))
        ]

    def mapping(self) -> list[str]:
        return [self.cleaned_data.get(f"col_{i}", "") or "" for i in range(len(self.job.headers))]


ACTION_FILTERS = [
    ("", "All rows"),
    ("refuse", "Refused"),
    ("create", "Create"),
    ("update", "Update"),
    ("skip", "Skip"),
]


class RowFilterForm(forms.Form):
    show = forms.ChoiceField(label="Show", choices=ACTION_FILTERS, required=False)
    page = forms.IntegerField(required=False, min_value=1, max_value=1_000_000, widget=forms.HiddenInput)


def upload_limit_mb() -> int:
    return int(settings.DATAIO_MAX_UPLOAD_MB)
