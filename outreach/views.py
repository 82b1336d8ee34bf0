"""The lead page's "Send email" form, and the public open pixel and click redirect (/e/…).

The pixel and click pages are not API endpoints (not in the OpenAPI schema): a mail client loads
the one and a person follows the other. A tampered or made-up token gets a 400 page, never a
redirect; both are limited per client address.
"""

from __future__ import annotations

import base64

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from accounts.throttle import client_ip
from leadcrm.http import HtmxHttpRequest, request_user
from leadcrm.models import Lead
from leadcrm.permissions import can_change_lead
from outreach import services, tokens
from outreach.forms import EmailForm

# A transparent 1×1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _bad_link(request: HttpRequest, message: str) -> HttpResponse:
    response = render(request, "outreach/bad_link.html", {"message": message}, status=400)
    response["Referrer-Policy"] = "no-referrer"
    return response


def _too_many(request: HttpRequest) -> HttpResponse:
    response = render(
        request,
        "outreach/bad_link.html",
        {"message": "Too many requests from your address; try again in a minute."},
        status=429,
    )
    response["Retry-After"] = "60"
    return response


@never_cache
@require_GET
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    if services.over_ip_limit(client_ip(request)):
        return _too_many(request)
    try:
        services.record_open(token)
    except tokens.BadToken as exc:
        return _bad_link(request, str(exc))
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@require_GET
def click(request: HttpRequest, token: str) -> HttpResponse:
    if services.over_ip_limit(client_ip(request)):
        return _too_many(request)
    try:
        url = services.record_click(token)
    except tokens.BadToken as exc:
        return _bad_link(request, str(exc))
    response = HttpResponseRedirect(url)
    response["Referrer-Policy"] = "no-referrer"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def compose(request: HtmxHttpRequest, lead_id: int) -> HttpResponse:
    """The "Send email" form of a lead the user may change (404 for a lead they cannot see)."""
    user = request_user(request)
    lead = get_object_or_404(Lead.objects.visible_to(user), pk=lead_id)
    if not can_change_lead(user, lead):
        raise PermissionDenied("Claim this lead before emailing it.")
    form = EmailForm(request.POST or None)
    status = 200
    sent = None
    if request.method == "POST":
        if form.is_valid():
            try:
                sent = services.send_email(
                    lead=lead, by=user, subject=form.cleaned_data["subject"], text=form.cleaned_data["text"]
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
                status = 400
            else:
                form = EmailForm()
        else:
            status = 400
    template = "outreach/partials/compose.html" if request.htmx else "outreach/compose.html"
    return render(request, template, {"lead": lead, "form": form, "sent": sent}, status=status)
