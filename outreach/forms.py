from __future__ import annotations

from django import forms

from outreach.services import SUBJECT_MAX, TEXT_MAX


class EmailForm(forms.Form):
    subject = forms.CharField(max_length=SUBJECT_MAX)
    text = forms.CharField(label="Message", max_length=TEXT_MAX, widget=forms.Textarea)
