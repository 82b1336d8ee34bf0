"""The privacy pages (/privacy/): managers export, erase, answer requests and preview retention;
anyone who sees a lead sees its consent history (an HTMX partial on the lead's timeline)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from leadcrm import selectors
from leadcrm import services as crm
from leadcrm.http import HtmxHttpRequest, request_user
from leadcrm.models import ConsentSource, Lead
from leadcrm.permissions import can_change_lead, manager_required
from privacy import services
from privacy.forms import ConsentForm, DeclineForm, EraseConfirmForm, FindPersonForm, RequestFilterForm
from privacy.models import PrivacyRequest

CONSENT_HISTORY_LIMIT = 50


@manager_required
@require_GET
def index(request: HtmxHttpRequest) -> HttpResponse:
    """Find a person by email; from there, export or erase. Open requests and retention at a glance."""
    form = FindPersonForm(request.GET or None)
    lead = None
    searched = form.is_bound and form.is_valid()
    if searched:
        lead = services.find_person(form.cleaned_data["email"])
    context = {
        "form": form,
        "searched": searched,
        "lead": lead,
        "counts": _person_counts(lead) if lead else None,
        "open_requests": services.open_requests().count(),
        "retention": services.retention_preview(sample=0),
    }
    return render(
        request, "privacy/index.html", context, status=400 if form.is_bound and not searched else 200
    )


def _person_counts(lead: Lead) -> dict[str, int]:
    return {
        "interactions": lead.interactions.count(),
        "chats": lead.conversations.count(),
        "consents": lead.consents.count(),
        "follow_ups": lead.follow_ups.count(),
    }


@manager_required
@require_POST
def export(request: HtmxHttpRequest, lead_id: int) -> HttpResponse:
    """Download everything held about this lead (JSON or CSV); recorded in the audit trail."""
    lead = get_object_or_404(Lead, pk=lead_id)
    fmt = request.POST.get("format", "json")
    try:
        body, content_type = services.export_person(lead=lead, fmt=fmt, by=request_user(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("privacy:index")
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{services.export_filename(lead, fmt)}"'
    response["Cache-Control"] = "no-store"
    return response


@manager_required
@require_http_methods(["GET", "POST"])
def erase(request: HtmxHttpRequest, lead_id: int) -> HttpResponse:
    """Erase a person: a confirmation page first (what goes, what stays), then the erasure."""
    lead = get_object_or_404(Lead, pk=lead_id)
    if lead.erased_at is not None:
        messages.info(request, f"Lead #{lead.pk} was already erased.")
        return redirect("privacy:index")
    form = EraseConfirmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.erase_person(lead=lead, by=request_user(request))
        except ValidationError as exc:
            form.add_error(None, " ".join(exc.messages))
        else:
            messages.success(request, f"Lead #{lead.pk} was erased. Its anonymised row stays in your counts.")
            return redirect("privacy:requests")
    status = 400 if form.is_bound and form.errors else 200
    context = {"lead": lead, "form": form, "counts": _person_counts(lead)}
    return render(request, "privacy/erase.html", context, status=status)


@manager_required
@require_GET
def requests_list(request: HtmxHttpRequest) -> HttpResponse:
    """People's requests from the website chat: waiting ones first to act on, handled ones for the record."""
    form = RequestFilterForm(request.GET)
    status = form.status_value()
    rows = PrivacyRequest.objects.select_related("lead", "handled_by").order_by("-created_at", "-id")
    if status:
        rows = rows.filter(status=status)
    page = Paginator(rows, per_page=50).get_page(request.GET.get("page"))
    return render(
        request,
        "privacy/requests.html",
        {"form": form, "page": page, "status": status or "all", "decline_form": DeclineForm()},
    )


@manager_required
@require_POST
def decline(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Close a request without erasing, with the reason."""
    privacy_request = get_object_or_404(PrivacyRequest, pk=pk)
    form = DeclineForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the request is declined (up to 300 characters).")
        return redirect("privacy:requests")
    try:
        services.decline_request(
            request=privacy_request, by=request_user(request), note=form.cleaned_data["note"]
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Request #{privacy_request.pk} declined.")
    return redirect("privacy:requests")


@manager_required
@require_GET
def retention(request: HtmxHttpRequest) -> HttpResponse:
    """What the next retention run will anonymise: the count, the first leads, and when it runs."""
    return render(request, "privacy/retention.html", {"preview": services.retention_preview(sample=25)})


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def consents(request: HtmxHttpRequest, lead_id: int) -> HttpResponse:
    """A lead's consent history (anyone who sees the lead); whoever may change it records a new one."""
    lead = selectors.visible_lead(user=request.user, lead_id=lead_id)
    may_record = can_change_lead(request.user, lead) and lead.erased_at is None
    form = ConsentForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if not may_record:
            raise PermissionDenied("Claim this lead before recording its consent.")
        if form.is_valid():
            data = form.cleaned_data
            try:
                crm.record_consent(
                    lead=lead,
                    purpose=data["purpose"],
                    granted=data["granted"],
                    source=ConsentSource.SALESPERSON,
                    text=data["text"],
                    recorded_by=request_user(request),
                )
            except ValidationError as exc:
                form.add_error(None, " ".join(exc.messages))
                status = 400
            else:
                form = ConsentForm()
        else:
            status = 400
    context = {
        "lead": lead,
        "consents": lead.consents.select_related("recorded_by").order_by("-recorded_at", "-id")[
            :CONSENT_HISTORY_LIMIT
        ],
        "form": form,
        "may_record": may_record,
        "now": timezone.now(),
    }
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "privacy/partials/consent_history.html", context, status=status)
    if request.method == "POST" and status == 200:
        return redirect(reverse("privacy:consents", args=[lead.pk]))
    return render(request, "privacy/consents.html", context, status=status)
