"""The API tokens page: a user lists, creates and revokes their own tokens; a manager sees and revokes all."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services
from accounts.forms import StaffProfileForm, TokenForm
from accounts.models import ApiToken
from accounts.time_zones import COOKIE_NAME, remember_profile_zone, valid_zone
from leadcrm import services as leadcrm_services
from leadcrm.http import HtmxHttpRequest, request_user
from leadcrm.models import StaffProfile
from leadcrm.permissions import is_manager


def _context(
    request: HttpRequest, form: TokenForm, new_secret: services.NewToken | None = None
) -> dict[str, Any]:
    user = request_user(request)
    manager = is_manager(user)
    tokens = ApiToken.objects.select_related("user", "revoked_by").order_by("-created_at")
    return {
        "form": form,
        "new_token": new_secret,
        "own_tokens": list(tokens.filter(user=user)),
        # Managers also see everyone else's, to revoke a leaver's or a leaked token.
        "other_tokens": list(tokens.exclude(user=user)) if manager else None,
        "now": timezone.now(),
    }


def _render(request: HtmxHttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    template = "accounts/partials/tokens.html" if request.htmx else "accounts/tokens.html"
    response = render(request, template, context, status=status)
    response["Cache-Control"] = "no-store"  # a new secret is on this page once; no cache keeps it
    return response


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HtmxHttpRequest) -> HttpResponse:
    """List the tokens; POST creates one and shows its secret once."""
    if request.method == "GET":
        return _render(request, _context(request, TokenForm()))
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _render(request, _context(request, form), status=400)
    try:
        new = services.create_token(
            user=request_user(request), name=form.cleaned_data["name"], days=form.cleaned_data["days"]
        )
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
        return _render(request, _context(request, form), status=400)
    return _render(request, _context(request, TokenForm(), new_secret=new))


@login_required
@require_POST
def revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Revoke one token: your own, or anyone's if you are a manager; others' ids answer 404."""
    user = request_user(request)
    token = ApiToken.objects.visible_to(user, manager=is_manager(user)).filter(pk=pk).first()
    if token is None:
        raise Http404("No such token.")
    revoked = services.revoke_token(token=token, by=user)
    text = (
        f"Token “{token.name}” revoked: it no longer works."
        if revoked
        else f"Token “{token.name}” was already revoked."
    )
    if request.htmx:
        context = _context(request, TokenForm())
        context["flash"] = text
        return _render(request, context)
    messages.success(request, text)
    return redirect("accounts:tokens")


# --- Profile: the user's own settings ------------------------------------------------------------


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """The user's own settings (time zone…): a plain form, the same with or without JavaScript."""
    user = request_user(request)
    current = StaffProfile.objects.filter(user=user).first() or StaffProfile(user=user)
    status = 200
    if request.method == "POST":
        form = StaffProfileForm(request.POST, instance=current)
        if form.is_valid():
            try:
                saved = leadcrm_services.update_staff_profile(user=user, **form.cleaned_data)
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                remember_profile_zone(request, saved.timezone)
                messages.success(request, "Settings saved.")
                return redirect("accounts:profile")
        form.point_at_errors()
        status = 400
    else:
        form = StaffProfileForm(instance=current)
    context = {"form": form, "browser_zone": valid_zone(request.COOKIES.get(COOKIE_NAME, ""))}
    return render(request, "accounts/profile.html", context, status=status)
