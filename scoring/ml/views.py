"""Manager pages for predictive scoring: live accuracy, calibration, fairness, retrain with progress."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from leadcrm.http import HtmxHttpRequest, request_user
from leadcrm.permissions import manager_required
from scoring.ml import reports, services
from scoring.ml.models import MlSettings, ModelVersion, TrainingRun
from scoring.runs import schedule_recompute


@manager_required
@require_GET
def accuracy(request: HttpRequest) -> HttpResponse:
    attributes = reports.fairness_attributes()
    chosen = request.GET.get("attribute")
    fairness = (
        reports.fairness_report(chosen) if chosen in attributes else reports.first_fairness_report(attributes)
    )
    context = {
        "report": reports.accuracy_report(),
        "fairness": fairness,
        "attributes": attributes,
        "protected_in_use": reports.protected_in_use(),
    }
    return render(request, "ml/accuracy.html", context)


@manager_required
@require_GET
def fairness(request: HttpRequest) -> HttpResponse:
    attribute = (request.GET.get("attribute") or "").strip()
    if attribute not in reports.fairness_attributes():
        return HttpResponse("Choose one of the listed attributes.", status=400)
    return render(
        request,
        "ml/partials/fairness.html",
        {"fairness": reports.fairness_report(attribute), "attributes": reports.fairness_attributes()},
    )


def _run_context(run: TrainingRun) -> dict[str, Any]:
    """The run partial's context; once the run has ended, also the "Model in use" card, which the
    partial swaps in out of band, so the page names the model the run promoted without a reload."""
    if run.is_active:
        return {"run": run}
    promoted = ModelVersion.objects.filter(is_promoted=True).defer("artifact").first()
    cold_start = None
    if promoted is None:
        settings = MlSettings.load()
        won, lost = services.outcome_counts()
        if min(won, lost) < settings.min_outcomes_per_class:
            cold_start = services.cold_start_message(won, lost, settings.min_outcomes_per_class)
    return {
        "run": run,
        "model_card": True,
        "v": promoted,
        "cold_start": cold_start,
        "protected_in_use": reports.protected_in_use(),
    }


@manager_required
@require_POST
def retrain(request: HtmxHttpRequest) -> HttpResponse:
    run = services.request_retrain()
    if request.htmx:
        # With an eager worker (the demo) the run has already finished by now: show that, not "queued".
        run.refresh_from_db()
        return render(request, "ml/partials/run.html", _run_context(run))
    messages.info(request, "Retraining started; this page shows its progress.")
    return redirect("ml:accuracy")


@manager_required
@require_GET
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "ml/partials/run.html", _run_context(get_object_or_404(TrainingRun, pk=pk)))


@manager_required
@require_POST
def blend(request: HttpRequest) -> HttpResponse:
    try:
        weight = float(request.POST.get("weight", ""))
        services.set_blend_weight(weight)
    except ValueError:
        messages.error(request, "Enter a blend weight between 0 and 1, e.g. 0.5.")
        return redirect("ml:accuracy")
    messages.success(
        request, f"Queue priority now blends {weight:.0%} model probability with the rule score."
    )
    schedule_recompute(
        reason="Blend weight changed", by=request_user(request)
    )  # new priorities for every lead
    return redirect("ml:accuracy")
