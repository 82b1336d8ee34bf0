"""Forms of the outreacher pages. Unknown filter values become form errors with the valid choices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from django import forms
from django.utils import timezone

from leadcrm.models import KIND_SLUGS, InteractionKind, LeadSource, LeadStatus
from leadcrm.reports import PERIODS
from leadcrm.selectors import SORTS
from leadcrm.services import OUTCOME_KINDS

FIT_LETTERS = "ABCD"
ENGAGEMENT_DIGITS = "1234"
GRADE_CHOICES = [("", "Any grade")] + [
    choice
    for letter in FIT_LETTERS
    for choice in [(letter, f"{letter} (any engagement)")]
    + [(f"{letter}{d}", f"{letter}{d}") for d in ENGAGEMENT_DIGITS]
]
STATUS_CHOICES = [("", "Open leads"), ("all", "All statuses"), *LeadStatus.choices]


class ChoiceWithHint(forms.ChoiceField):
    """A choice field whose 'invalid choice' message lists what is allowed."""

    def __init__(self, *args: Any, noun: str = "value", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.noun = noun

    def validate(self, value: Any) -> None:
        if value and not self.valid_value(value):
            # The setter normalises choices to (value, label) pairs; the stubs type the getter as
            # the setter's input (mappings, callables, Choices classes).
            choices = cast("Iterable[tuple[Any, Any]]", self.choices)
            allowed = ", ".join(str(k) for k, _ in choices if k != "")
            raise forms.ValidationError(
                f"Unknown {self.noun} {value!r}. Use one of: {allowed}.", code="invalid_choice"
            )
        super().validate(value)


class QueueFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=100)
    grade = ChoiceWithHint(label="Grade", choices=GRADE_CHOICES, required=False, noun="grade")
    segment = ChoiceWithHint(label="Segment", choices=(), required=False, noun="segment")
    source = ChoiceWithHint(
        label="Source", choices=[("", "Any source"), *LeadSource.choices], required=False, noun="source"
    )
    status = ChoiceWithHint(label="Status", choices=STATUS_CHOICES, required=False, noun="status")
    owner = ChoiceWithHint(label="Owner", choices=(), required=False, noun="owner")
    mine = forms.BooleanField(label="Mine", required=False)
    unassigned = forms.BooleanField(label="Unassigned", required=False)
    live = forms.BooleanField(label="Live now", required=False)
    sort = ChoiceWithHint(
        label="Sort by", choices=[(k, label) for k, (label, _) in SORTS.items()], required=False, noun="sort"
    )
    page = forms.IntegerField(required=False, min_value=1, max_value=10_000, widget=forms.HiddenInput)

    def __init__(
        self,
        *args: Any,
        segments: Sequence[tuple[int, str]] = (),
        owners: Sequence[tuple[int, str]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # self.fields holds copies of the ChoiceWithHint fields declared above; mypy sees Field.
        segment_field = cast(ChoiceWithHint, self.fields["segment"])
        owner_field = cast(ChoiceWithHint, self.fields["owner"])
        segment_field.choices = [("", "Any segment"), *((str(k), v) for k, v in segments)]
        owner_field.choices = [("", "Anyone"), *((str(k), v) for k, v in owners)]
        self.fields["q"].widget.attrs.update(
            {"type": "search", "placeholder": "Name, email or company", "autocomplete": "off"}
        )

    def clean_q(self) -> str:
        return " ".join(self.cleaned_data.get("q", "").split())

    def clean_segment(self) -> int | None:
        value = self.cleaned_data.get("segment")
        return int(value) if value else None

    def clean_owner(self) -> int | None:
        value = self.cleaned_data.get("owner")
        return int(value) if value else None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data is None:  # Form.clean returns cleaned_data; the stubs allow None, as Django does
            data = self.cleaned_data
        if data.get("mine") and data.get("unassigned"):
            self.add_error("unassigned", "Choose “mine” or “unassigned”, not both.")
        return data

    def valid_filters(self) -> dict[str, Any]:
        """The filters that validated (invalid ones are dropped and shown as errors)."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {
            k: v for k, v in self.cleaned_data.items() if k not in self.errors and v not in (None, "", False)
        }


class TimelineFilterForm(forms.Form):
    kind = ChoiceWithHint(
        label="Show",
        choices=[("", "Everything")]
        + [(InteractionKind(v).slug, label) for v, label in InteractionKind.choices],
        required=False,
        noun="interaction kind",
    )
    before = forms.DateTimeField(required=False, widget=forms.HiddenInput)

    def kind_value(self) -> int | None:
        slug = self.cleaned_data.get("kind") if self.is_valid() else None
        return int(InteractionKind.from_slug(slug)) if slug in KIND_SLUGS else None


OUTCOME_STATUS_CHOICES = [
    ("", "Keep the status"),
    (LeadStatus.WORKING, "Working"),
    (LeadStatus.QUALIFIED, "Qualified"),
    (LeadStatus.WON, "Won"),
    (LeadStatus.LOST, "Lost"),
    (LeadStatus.DISQUALIFIED, "Disqualified"),
]


class OutcomeForm(forms.Form):
    kind = ChoiceWithHint(
        label="What happened",
        choices=[("call", "Call"), ("email", "Email sent"), ("meeting", "Meeting"), ("note", "Note only")],
        initial="call",
        noun="outcome",
    )
    notes = forms.CharField(
        label="Notes", required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3})
    )
    duration_min = forms.IntegerField(label="Duration (minutes)", required=False, min_value=0, max_value=600)
    status = ChoiceWithHint(label="New status", choices=OUTCOME_STATUS_CHOICES, required=False, noun="status")
    lost_reason = forms.CharField(label="Lost reason", required=False, max_length=200)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data is None:  # Form.clean returns cleaned_data; the stubs allow None, as Django does
            data = self.cleaned_data
        if data.get("status") == LeadStatus.LOST and not (data.get("lost_reason") or "").strip():
            self.add_error("lost_reason", "Say why the lead was lost.")
        if data.get("kind") not in (None, *OUTCOME_KINDS):
            self.add_error("kind", "Unknown outcome.")
        return data


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, datetime):
            return timezone.localtime(value).strftime("%Y-%m-%dT%H:%M")
        return super().format_value(value)


class FollowUpForm(forms.Form):
    due_at = forms.DateTimeField(
        label="Due",
        widget=DateTimeLocalInput(),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
    )
    note = forms.CharField(label="What to do", required=False, max_length=1000)

    def clean_due_at(self) -> datetime:
        due_at = self.cleaned_data["due_at"]
        if due_at < timezone.now() - timedelta(minutes=1):
            raise forms.ValidationError("Pick a time in the future — a follow-up cannot be due in the past.")
        return due_at


class ReportForm(forms.Form):
    period = ChoiceWithHint(
        label="Leads created in",
        choices=[("30", "Last 30 days"), ("90", "Last 90 days"), ("365", "Last year"), ("all", "All time")],
        required=False,
        noun="period",
    )

    def period_value(self) -> str:
        value = self.cleaned_data.get("period") if self.is_valid() else None
        return value if value in PERIODS else "365"
