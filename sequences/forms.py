"""Forms of the sequence pages: a sequence's settings, a step, enrolling a segment or one lead."""

from __future__ import annotations

from django import forms

from leadcrm.models import Segment
from sequences.models import Sequence, Step


class SequenceForm(forms.ModelForm):
    class Meta:
        model = Sequence
        fields = ["name", "description", "consent_needed", "trigger", "active"]
        labels = {
            "consent_needed": "Emails need",
            "trigger": "Start automatically when",
            "active": "Active (uncheck to pause)",
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class StepForm(forms.ModelForm):
    class Meta:
        model = Step
        fields = ["kind", "subject", "body", "wait_amount", "wait_unit", "task_note", "task_due_hours"]
        labels = {
            "kind": "Step",
            "body": "Message",
            "wait_amount": "Wait for",
            "wait_unit": "Unit",
            "task_note": "What should the salesperson do?",
            "task_due_hours": "Due after (hours)",
        }
        widgets = {"body": forms.Textarea(attrs={"rows": 8})}


class SegmentEnrolForm(forms.Form):
    segment = forms.ModelChoiceField(queryset=Segment.objects.order_by("name"), empty_label="Pick a segment")
    follow_new_members = forms.BooleanField(
        required=False, label="Also enrol people who join this segment later"
    )


class LeadEnrolForm(forms.Form):
    sequence = forms.ModelChoiceField(
        queryset=Sequence.objects.filter(active=True).order_by("name"), empty_label="Pick a sequence"
    )
