"""Small HTMX endpoints the scoring admin pages poll or load: recompute progress, rule matches, preview."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from leadcrm.http import HtmxHttpRequest, request_user
from leadcrm.models import Lead
from leadcrm.permissions import manager_required
from scoring import selectors, services
from scoring.models import Rule


@manager_required
@require_GET
def recompute_progress(request: HttpRequest) -> HttpResponse:
    """The progress bar of the latest full recompute (polled every second while one runs)."""
    return render(request, "scoring/partials/recompute_progress.html", {"run": selectors.latest_run()})


@manager_required
@require_POST
def recompute_now(request: HtmxHttpRequest) -> HttpResponse:
    """Queue a full recompute by hand (e.g. after importing leads)."""
    services.schedule_recompute(reason="Requested from the admin", by=request_user(request))
    if request.htmx:
        return render(request, "scoring/partials/recompute_progress.html", {"run": selectors.latest_run()})
    return redirect("admin:scoring_rule_changelist")


@manager_required
@require_GET
def rule_matches(request: HttpRequest, rule_id: int) -> HttpResponse:
    """How many leads the saved rule gives points to right now."""
    rule = get_object_or_404(Rule, pk=rule_id)
    context: dict = {"rule": rule}
    try:
        context["matched"] = selectors.rule_match_count(rule)
        context["total"] = Lead.objects.count()
    except ValueError as exc:
        context["error"] = str(exc)
    return render(request, "scoring/partials/rule_matches.html", context)


@manager_required
@require_GET
def rule_preview(request: HttpRequest, rule_id: int) -> HttpResponse:
    """The points the saved rule would give the lead chosen by id, email or name."""
    rule = get_object_or_404(Rule, pk=rule_id)
    query = (request.GET.get("lead") or "").strip()
    context: dict = {"rule": rule, "query": query}
    if not query:
        context["error"] = "Type a lead id, email or name to preview this rule."
    else:
        leads = Lead.objects.all()
        if query.isdigit():
            lead = leads.filter(pk=int(query)).first()
        elif "@" in query:
            lead = leads.filter(email__iexact=query).first()
        else:
            first, _, last = query.partition(" ")
            named = leads.filter(first_name__iexact=first)
            lead = (named.filter(last_name__iexact=last) if last else named).order_by("id").first()
        if lead is None:
            context["error"] = f"No lead matches “{query}”. Try its id (the number in its admin URL)."
        else:
            try:
                context["preview"] = selectors.rule_preview(rule, lead)
            except ValueError as exc:
                context["error"] = f"This rule fails for that lead: {exc}"
    return render(request, "scoring/partials/rule_preview.html", context)
