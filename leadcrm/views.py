"""HTML views of the CRM: thin, they call selectors and services and render templates.

HTMX requests get fragments (the queue table, one row, the lead panel); a direct visit or a
history restore gets the whole page, so every URL also works as a plain link.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from leadcrm import charts, queue_html, reports, selectors, services, signals
from leadcrm.forms import FollowUpForm, OutcomeForm, QueueFilterForm, ReportForm, TimelineFilterForm
from leadcrm.http import HtmxHttpRequest, request_user
from leadcrm.models import FollowUp, InteractionKind
from leadcrm.permissions import can_change_lead, is_manager, manager_required

PER_PAGE = 50
QUEUE_CHANGED = "queue-changed"  # HX-Trigger event: the queue table re-fetches itself


def _is_fragment_request(request: HtmxHttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


def _error_text(exc: ValidationError) -> str:
    return " ".join(exc.messages)


# --- Landing page -----------------------------------------------------------------------------


HOME_FOLLOW_UPS = 10  # the home page lists the first ten; the follow-ups page has them all


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Landing page after login: counts, follow-ups due today, and the top of the queue."""
    top = selectors.queue_page(selectors.lead_queue(user=request.user), per_page=5)
    now = timezone.now()
    due = selectors.follow_ups_for(user=request.user, now=now, days_ahead=0, limit=HOME_FOLLOW_UPS)
    shown = len(due["overdue"]) + len(due["today"])
    return render(
        request,
        "leadcrm/home.html",
        {
            "summary": selectors.home_summary(user=request.user),
            "overdue": due["overdue"],
            "today": due["today"],
            "due_more": selectors.due_count(user=request.user, now=now) - shown,
            "top": top.rows,
        },
    )


HEALTH_STATEMENT_TIMEOUT_MS = 2000


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers: the database answers, within 2 s (503 with Retry-After if not)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"SET LOCAL statement_timeout = {HEALTH_STATEMENT_TIMEOUT_MS}")
        cursor.execute("SELECT 1")
    response = JsonResponse({"ok": True})
    response["Cache-Control"] = "no-store"
    return response


# --- Queue ------------------------------------------------------------------------------------


def _rows_html(
    request: HttpRequest,
    rows: list[Any],
    *,
    filter_qs: str,
    filtered: bool,
    now: datetime,
    by_priority: bool = True,
    after: Any | None = None,
) -> str:
    lead_base = reverse("leadcrm:lead", args=[0])[:-2]  # "/crm/leads/"
    return queue_html.queue_rows(
        rows,
        user_id=request_user(request).pk,
        lead_base=lead_base,
        claim_suffix=reverse("leadcrm:claim", args=[0])[len(lead_base) + 1 :],  # "/claim/"
        query=f"?{filter_qs}" if filter_qs else "",
        csrf_token=get_token(request),
        now=now,
        filtered=filtered,
        queue_url=reverse("leadcrm:queue"),
        by_priority=by_priority,
        after=after,
    )


def _select_fields(form: QueueFilterForm, *, manager: bool) -> list[dict[str, Any]]:
    names = ["grade", "segment", "source", "status", *(["owner"] if manager else []), "sort"]
    return [
        {
            "name": name,
            "label": form.fields[name].label,
            # self.fields holds copies of the declared ChoiceWithHint fields; mypy sees Field.
            "choices": cast(forms.ChoiceField, form.fields[name]).choices,
            "value": str(form[name].value() or ("priority" if name == "sort" else "")),
        }
        for name in names
    ]


def _queue_context(request: HttpRequest, *, full_page: bool) -> dict[str, Any]:
    # The table alone (htmx) needs the segment and owner lists only to validate a chosen value;
    # the whole page also draws them as selects.
    if full_page or request.GET.get("segment") or request.GET.get("owner"):
        segments, owners = selectors.filter_choices(user=request.user)
    else:
        segments, owners = [], []
    form = QueueFilterForm(request.GET or None, segments=segments, owners=owners)
    filters = form.valid_filters()
    page_number = filters.pop("page", 1)
    page = selectors.queue_page(
        selectors.lead_queue(user=request.user, **filters), page=page_number, per_page=PER_PAGE
    )
    # The filters as a query string (no page): row links and the poller keep them.
    kept = {
        k: v
        for k, v in request.GET.items()
        if k in form.fields and k != "page" and k not in form.errors and v
    }
    filter_qs = urlencode(kept)
    now = timezone.now()
    rows_html = _rows_html(
        request,
        page.rows,
        filter_qs=filter_qs,
        filtered=bool(filters),
        now=now,
        by_priority=filters.get("sort", "priority") == "priority",
        after=page.after,
    )
    queue_base = reverse("leadcrm:queue")
    manager = is_manager(request.user)
    return {
        "form": form,
        "page": page,
        "rows_html": rows_html,
        "select_fields": _select_fields(form, manager=manager) if full_page else [],
        "filters": filters,
        "filter_qs": filter_qs,
        "queue_url": queue_base + (f"?{filter_qs}" if filter_qs else ""),
        "page_url": queue_base + "?" + urlencode({**kept, "page": page.number}),
        "next_url": queue_base + "?" + urlencode({**kept, "page": page.number + 1}),
        "prev_url": queue_base + "?" + urlencode({**kept, "page": max(1, page.number - 1)}),
        "sort_label": selectors.SORTS.get(filters.get("sort", "priority"), selectors.SORTS["priority"])[0],
        "filter_errors": [f"{form.fields[f].label}: {e}" for f, errs in form.errors.items() for e in errs],
        "now": now,
        "queue_base": queue_base,
        "is_manager": manager,
    }


@login_required
@require_GET
@vary_on_headers("HX-Request")
def queue(request: HtmxHttpRequest) -> HttpResponse:
    """The prioritized queue; filters and the poller swap only the table."""
    fragment = _is_fragment_request(request)
    context = _queue_context(request, full_page=not fragment)
    status = 400 if context["filter_errors"] else 200
    if fragment:
        return render(request, "leadcrm/partials/queue_table.html", context, status=status)
    context["due"] = selectors.due_counts(user=request.user)
    return render(request, "leadcrm/queue.html", context, status=status)


# --- Lead context -----------------------------------------------------------------------------


def live_panel_url(lead_id: int) -> str:
    """The chat's agent panel for this lead (by URL name: the CRM core imports no other app)."""
    return reverse("chatbot:agent_panel", kwargs={"lead_id": lead_id})


def _panel_context(
    request: HttpRequest,
    lead_id: int,
    *,
    outcome_form: OutcomeForm | None = None,
    follow_up_form: FollowUpForm | None = None,
) -> dict[str, Any]:
    ctx = selectors.lead_context(user=request.user, lead_id=lead_id)
    lead = ctx.lead
    signals.lead_accessed.send(None, actor=request.user, lead_id=lead.pk, action="viewed", request=request)
    snapshots = ctx.snapshots
    score_chart = charts.line_chart(
        [(s.taken_at, s.rule_score) for s in snapshots],
        y_min=min([0.0, *(s.rule_score for s in snapshots)]),
        y_max=max([100.0, *(s.rule_score for s in snapshots)]),
    )
    probability_chart = charts.line_chart(
        [(s.taken_at, 100 * s.ml_probability) for s in snapshots if s.ml_probability is not None],
        y_min=0,
        y_max=100,
        fmt="{:.0f}%",
    )
    sentiment_chart = charts.line_chart(
        [(at, value) for at, value, _ in ctx.sentiments], y_min=-1, y_max=1, fmt="{:+.2f}"
    )
    follow_up_form = follow_up_form or FollowUpForm(initial={"due_at": timezone.now() + timedelta(days=1)})
    due_value = (
        follow_up_form.data.get("due_at", "")
        if follow_up_form.is_bound
        else timezone.localtime(follow_up_form.initial["due_at"]).strftime("%Y-%m-%dT%H:%M")
    )
    return {
        "ctx": ctx,
        "due_value": due_value,
        "lead": lead,
        "can_change": can_change_lead(request.user, lead),
        "live_panel_url": live_panel_url(lead.pk),
        "score_chart": score_chart,
        "probability_chart": probability_chart,
        "sentiment_chart": sentiment_chart,
        "outcome_form": outcome_form or OutcomeForm(initial={"kind": "call"}),
        "follow_up_form": follow_up_form,
        "timeline_form": TimelineFilterForm(),
        "timeline": ctx.timeline,
        "timeline_has_more": ctx.timeline_has_more,
        "timeline_kind": "",
        "now": timezone.now(),
    }


def _render_panel(
    request: HttpRequest, lead_id: int, *, status: int = 200, trigger: bool = False, **forms: Any
) -> HttpResponse:
    response = render(
        request, "leadcrm/partials/lead_panel.html", _panel_context(request, lead_id, **forms), status=status
    )
    if trigger:
        response["HX-Trigger"] = QUEUE_CHANGED
    return response


@login_required
@require_GET
@vary_on_headers("HX-Request")
def lead_detail(request: HtmxHttpRequest, lead_id: int) -> HttpResponse:
    """A lead's full context: a panel beside the queue (HTMX) or the whole page."""
    if _is_fragment_request(request):
        return _render_panel(request, lead_id)
    return _render_lead_page(request, lead_id)


def _render_lead_page(
    request: HtmxHttpRequest, lead_id: int, *, status: int = 200, **forms: Any
) -> HttpResponse:
    """The whole page with the lead open: a direct visit, or a form refused without JavaScript
    (shown again with its errors and the message, not redirected and lost)."""
    panel = _panel_context(request, lead_id, **forms)  # 404 first, before the queue query
    context = _queue_context(request, full_page=True)
    context.update(panel)
    context["due"] = selectors.due_counts(user=request.user)
    return render(request, "leadcrm/queue.html", context, status=status)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def lead_timeline(request: HtmxHttpRequest, lead_id: int) -> HttpResponse:
    """The timeline filtered by kind (and paged by `before`)."""
    lead = selectors.visible_lead(user=request.user, lead_id=lead_id)
    signals.lead_accessed.send(None, actor=request.user, lead_id=lead.pk, action="viewed", request=request)
    form = TimelineFilterForm(request.GET)
    status = 200 if form.is_valid() else 400
    kind = form.kind_value()
    before = form.cleaned_data.get("before") if status == 200 else None
    rows = selectors.lead_timeline(lead=lead, kind=kind, before=before, limit=selectors.TIMELINE_LIMIT + 1)
    context = {
        "lead": lead,
        "timeline": rows[: selectors.TIMELINE_LIMIT],
        "timeline_has_more": len(rows) > selectors.TIMELINE_LIMIT,
        "timeline_form": form,
        "timeline_kind": InteractionKind(kind).slug if kind else "",
        "timeline_errors": [e for errs in form.errors.values() for e in errs],
        "kinds": selectors.kind_counts(lead=lead),
        "appending": before is not None,
    }
    template = "leadcrm/partials/timeline.html" if _is_fragment_request(request) else "leadcrm/timeline.html"
    return render(request, template, context, status=status)


# --- Changes ----------------------------------------------------------------------------------


@login_required
@require_POST
def claim(request: HtmxHttpRequest, lead_id: int) -> HttpResponse:
    """Assign an unassigned lead to me."""
    lead = selectors.visible_lead(user=request.user, lead_id=lead_id)
    status = 200
    try:
        services.claim_lead(lead=lead, user=request_user(request))
        messages.success(request, f"{lead.display_name} is yours now.")
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        status = 409
    if not _is_fragment_request(request):
        if status != 200:
            return _render_lead_page(request, lead.pk, status=status)
        return redirect("leadcrm:lead", lead_id=lead.pk)
    # From a row or from the panel, the claimed lead opens in the panel and the queue refreshes.
    return _render_panel(request, lead.pk, status=status, trigger=True)


@login_required
@require_POST
def log_outcome_view(request: HtmxHttpRequest, lead_id: int) -> HttpResponse:
    """Log a call/email/meeting/note and optionally change the status; the queue refreshes."""
    lead = selectors.visible_lead(user=request.user, lead_id=lead_id)
    form = OutcomeForm(request.POST)
    shown_form: OutcomeForm | None = form  # None once logged: the panel shows a fresh form
    status = 200
    if not can_change_lead(request.user, lead):
        messages.error(
            request,
            "Claim this lead before logging outcomes on it."
            if lead.owner_id is None
            else "Only the lead's owner or a manager can log outcomes on it.",
        )
        status = 403
    elif form.is_valid():
        data = form.cleaned_data
        try:
            services.log_outcome(
                lead=lead,
                by=request.user,
                kind=data["kind"],
                notes=data["notes"],
                status=data["status"],
                lost_reason=data["lost_reason"],
                duration_min=data["duration_min"],
            )
        except PermissionDenied as exc:
            messages.error(request, str(exc))
            status = 403
        except ValidationError as exc:
            for field, errors in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
                form.add_error(field if field in form.fields else None, errors)
            status = 400
        else:
            messages.success(request, "Outcome logged. The lead will be rescored.")
            shown_form = None
    else:
        status = 400
    if not _is_fragment_request(request):
        if status != 200:
            return _render_lead_page(request, lead.pk, status=status, outcome_form=shown_form)
        return redirect("leadcrm:lead", lead_id=lead.pk)
    return _render_panel(request, lead.pk, status=status, trigger=status == 200, outcome_form=shown_form)


@login_required
@require_POST
def add_follow_up(request: HtmxHttpRequest, lead_id: int) -> HttpResponse:
    """Schedule a follow-up on a lead I may change; a time in the past is refused with a message."""
    lead = selectors.visible_lead(user=request.user, lead_id=lead_id)
    form = FollowUpForm(request.POST)
    shown_form: FollowUpForm | None = form  # None once scheduled: the panel shows a fresh form
    status = 200
    if not can_change_lead(request.user, lead):
        messages.error(request, "Claim this lead before scheduling follow-ups on it.")
        status = 403
    elif form.is_valid():
        try:
            services.add_follow_up(
                lead=lead,
                due_at=form.cleaned_data["due_at"],
                note=form.cleaned_data["note"],
                created_by=request_user(request),
            )
        except ValidationError as exc:
            form.add_error(
                "due_at" if "due_at" in getattr(exc, "message_dict", {}) else None, _error_text(exc)
            )
            status = 400
        else:
            messages.success(request, "Follow-up scheduled.")
            shown_form = None
    else:
        status = 400
    if not _is_fragment_request(request):
        if status != 200:
            return _render_lead_page(request, lead.pk, status=status, follow_up_form=shown_form)
        return redirect("leadcrm:lead", lead_id=lead.pk)
    return _render_panel(request, lead.pk, status=status, follow_up_form=shown_form)


@login_required
@require_POST
def complete_follow_up(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Mark a follow-up done (on a lead I may change)."""
    follow_up = get_object_or_404(FollowUp.objects.select_related("lead"), pk=pk)
    lead = selectors.visible_lead(user=request.user, lead_id=follow_up.lead_id)  # 404 when hidden
    if not can_change_lead(request.user, lead) and follow_up.assigned_to_id != request.user.pk:
        raise PermissionDenied("Only the lead's owner or a manager can complete this follow-up.")
    services.complete_follow_up(follow_up=follow_up)
    messages.success(request, f"Done: follow-up for {lead.display_name}.")
    if _is_fragment_request(request) and request.htmx.target == "lead-panel":
        return _render_panel(request, lead.pk)
    return redirect("leadcrm:follow_ups")


# --- Follow-ups and reports -------------------------------------------------------------------


@login_required
@require_GET
def follow_ups(request: HttpRequest) -> HttpResponse:
    """My open follow-ups: overdue, due today, the next seven days."""
    return render(request, "leadcrm/follow_ups.html", {"due": selectors.follow_ups_for(user=request.user)})


@login_required
@require_GET
def due_badge(request: HttpRequest) -> HttpResponse:
    """The nav reminder: how many follow-ups are overdue and due later today (polled)."""
    return render(
        request, "leadcrm/partials/due_badge.html", {"due": selectors.due_counts(user=request.user)}
    )


@manager_required
@require_GET
def manager_reports(request: HttpRequest) -> HttpResponse:
    """Conversion by source, grade and score decile, time to convert, and the funnel (managers)."""
    form = ReportForm(request.GET or None)
    period = form.period_value() if form.is_bound else "365"
    status = 400 if form.is_bound and not form.is_valid() else 200
    data = reports.cached_manager_report(period)
    context = {
        "form": form,
        "period": period,
        **data,
        "source_bars": charts.bars(
            [(r.label, 100 * (r.rate or 0)) for r in data["by_source"]], fmt="{:.0f}%"
        ),
        "grade_bars": charts.bars([(r.label, 100 * (r.rate or 0)) for r in data["by_grade"]], fmt="{:.0f}%"),
        "decile_bars": charts.bars(
            [(r.label, 100 * (r.rate or 0)) for r in data["by_decile"]], fmt="{:.0f}%"
        ),
        "funnel_bars": charts.bars([(s.label, s.count) for s in data["funnel"]], fmt="{:,.0f}"),
        "trend_charts": [
            (
                charts.columns([(f"week of {w.week:%d %b %Y}", w.new_leads) for w in data["weekly"]]),
                "New leads per week",
            ),
            (
                charts.columns([(f"week of {w.week:%d %b %Y}", w.won) for w in data["weekly"]]),
                "Leads won per week",
            ),
        ],
        "zone_label": timezone.get_current_timezone_name(),
    }
    return render(request, "leadcrm/reports.html", context, status=status)
