"""Sequence pages: the list and editor (managers), and the lead panel's enrol and stop (owners).

Every form works with and without JavaScript: with htmx the changed part is swapped in place
(errors included, as 400 fragments); without it a successful post redirects and a refused one
renders the page again with the error.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.forms import BaseForm
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from leadcrm.http import HtmxHttpRequest, request_user
from leadcrm.models import Lead
from leadcrm.permissions import manager_required
from sequences import selectors, services
from sequences.forms import LeadEnrolForm, SegmentEnrolForm, SequenceForm, StepForm
from sequences.models import Enrolment, Sequence, Step
from sequences.services import MERGE_FIELDS

RECENT_ENROLMENTS = 50


def _errors_into(form: BaseForm, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


@manager_required
@require_http_methods(["GET", "POST"])
def index(request: HtmxHttpRequest) -> HttpResponse:
    form = SequenceForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                sequence = services.save_sequence(sequence=form.save(commit=False), by=request_user(request))
            except ValidationError as exc:
                _errors_into(form, exc)
            else:
                messages.success(request, "Sequence created. Add its first step below.")
                return redirect("sequences:detail", pk=sequence.pk)
        status = 400
    sequences = selectors.sequences_with_steps()
    stats = selectors.sequence_stats()
    rows = [(s, stats.get(s.pk, selectors.SequenceStats())) for s in sequences]
    return render(request, "sequences/index.html", {"form": form, "rows": rows}, status=status)


def _detail_context(sequence: Sequence, **forms: Any) -> dict[str, Any]:
    enrolments = list(
        Enrolment.objects.filter(sequence=sequence)
        .select_related("lead")
        .order_by("-enrolled_at", "-pk")[:RECENT_ENROLMENTS]
    )
    steps = list(sequence.steps.order_by("position"))
    return {
        "sequence": sequence,
        "steps": steps,
        "form": forms.get("form") or SequenceForm(instance=sequence),
        "step_form": forms.get("step_form") or StepForm(initial={"kind": "email"}),
        "segment_form": forms.get("segment_form") or SegmentEnrolForm(),
        "stats": selectors.sequence_stats([sequence.pk]).get(sequence.pk, selectors.SequenceStats()),
        "enrolments": [(e, selectors.next_step(e, steps)) for e in enrolments],
        "merge_fields": MERGE_FIELDS,
    }


@manager_required
@require_http_methods(["GET", "POST"])
def detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    sequence = get_object_or_404(Sequence, pk=pk)
    form = SequenceForm(request.POST or None, instance=sequence)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.save_sequence(sequence=form.save(commit=False), by=request_user(request))
            except ValidationError as exc:
                _errors_into(form, exc)
            else:
                messages.success(request, "Sequence saved.")
                return redirect("sequences:detail", pk=sequence.pk)
        status = 400
        sequence.refresh_from_db()  # the heading shows the stored name, not the refused one
    return render(request, "sequences/detail.html", _detail_context(sequence, form=form), status=status)


@manager_required
@require_POST
def add_step(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    sequence = get_object_or_404(Sequence, pk=pk)
    step_form = StepForm(request.POST)
    status = 400
    if step_form.is_valid():
        try:
            services.add_step(sequence=sequence, step=step_form.save(commit=False), by=request_user(request))
        except ValidationError as exc:
            _errors_into(step_form, exc)
        else:
            if not request.htmx:
                messages.success(request, "Step added.")
                return redirect("sequences:detail", pk=sequence.pk)
            step_form, status = StepForm(initial={"kind": step_form.cleaned_data["kind"]}), 200
    context = _detail_context(sequence, step_form=step_form)
    template = "sequences/partials/steps.html" if request.htmx else "sequences/detail.html"
    return render(request, template, context, status=status)


@manager_required
@require_http_methods(["GET", "POST"])
def edit_step(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    step = get_object_or_404(Step.objects.select_related("sequence"), pk=pk)
    form = StepForm(request.POST or None, instance=step)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.update_step(step=form.save(commit=False), by=request_user(request))
            except ValidationError as exc:
                _errors_into(form, exc)
            else:
                messages.success(request, "Step saved.")
                return redirect("sequences:detail", pk=step.sequence_id)
        status = 400
    return render(
        request,
        "sequences/edit_step.html",
        {"step": step, "sequence": step.sequence, "step_form": form, "merge_fields": MERGE_FIELDS},
        status=status,
    )


@manager_required
@require_POST
def delete_step(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    step = get_object_or_404(Step, pk=pk)
    sequence = step.sequence
    services.delete_step(step=step, by=request_user(request))
    if request.htmx:
        return render(request, "sequences/partials/steps.html", _detail_context(sequence))
    messages.success(request, "Step removed.")
    return redirect("sequences:detail", pk=sequence.pk)


@manager_required
@require_POST
def enrol_segment(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    sequence = get_object_or_404(Sequence, pk=pk)
    form = SegmentEnrolForm(request.POST)
    if form.is_valid():
        try:
            result = services.enrol_segment(
                sequence=sequence,
                segment=form.cleaned_data["segment"],
                by=request_user(request),
                follow_new_members=form.cleaned_data["follow_new_members"],
            )
        except ValidationError as exc:
            _errors_into(form, exc)
        else:
            messages.success(
                request,
                f"{result.enrolled} of {result.members} members enrolled"
                + (
                    f"; {result.skipped} skipped (already in a sequence, through this one before, closed or erased)."
                    if result.skipped
                    else "."
                )
                + " Their first steps run within a minute.",
            )
            return redirect("sequences:detail", pk=sequence.pk)
    return render(request, "sequences/detail.html", _detail_context(sequence, segment_form=form), status=400)


# --- The lead panel's card -------------------------------------------------------------------------


def _card_response(
    request: HtmxHttpRequest, lead: Lead, *, form: LeadEnrolForm | None = None, status: int = 200
) -> HttpResponse:
    card = selectors.lead_card(lead=lead, user=request_user(request))
    context = {"card": card, "enrol_form": form, "lead": lead}
    if request.htmx:
        return render(request, "sequences/partials/lead_card.html", context, status=status)
    return render(request, "sequences/lead_sequence.html", context, status=status)


@login_required
@require_POST
def enrol_lead(request: HtmxHttpRequest, lead_id: int) -> HttpResponse:
    """ "Add to sequence" in the lead panel: anyone who may change the lead (404 if they cannot see it)."""
    user = request_user(request)
    lead = get_object_or_404(Lead.objects.visible_to(user), pk=lead_id)
    form = LeadEnrolForm(request.POST)
    if form.is_valid():
        try:
            services.enrol_lead(sequence=form.cleaned_data["sequence"], lead=lead, by=user)
        except ValidationError as exc:
            _errors_into(form, exc)
        else:
            if not request.htmx:
                messages.success(request, f"Added to “{form.cleaned_data['sequence'].name}”.")
                return redirect("leadcrm:lead", lead_id=lead.pk)
            lead.refresh_from_db()
            return _card_response(request, lead)
    return _card_response(request, lead, form=form, status=400)


@login_required
@require_POST
def stop(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """ "Stop" on the lead panel's sequence card (404 for a lead the user cannot see)."""
    user = request_user(request)
    enrolment = get_object_or_404(
        Enrolment.objects.select_related("lead", "sequence").filter(lead__in=Lead.objects.visible_to(user)),
        pk=pk,
    )
    services.stop_enrolment(enrolment=enrolment, by=user)
    if not request.htmx:
        messages.success(request, f"Stopped “{enrolment.sequence.name}” for this lead.")
        return redirect("leadcrm:lead", lead_id=enrolment.lead_id)
    return _card_response(request, enrolment.lead)
