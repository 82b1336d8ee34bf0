"""Pages for routing and promises: the on-duty toggle (nav), and the managers' list of follow-ups
that need attention (overdue, or whose owner left) with reassignment.

Every form posts plainly and with HTMX alike: HTMX swaps the fragment in place; without
JavaScript the same view answers a redirect after success and re-renders the page with the error
(400) after a refusal, so no error is ever lost.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from leadcrm import routing, services
from leadcrm.http import HtmxHttpRequest, request_user
from leadcrm.models import FollowUp
from leadcrm.permissions import is_manager, is_salesperson, manager_required

ATTENTION_PER_PAGE = 50


# --- On duty ------------------------------------------------------------------------------------


def duty_state(user: Any) -> bool | None:
    """The nav toggle's state: on/off duty for a salesperson or manager; None (no toggle) otherwise."""
    if not getattr(user, "is_authenticated", False) or not (is_manager(user) or is_salesperson(user)):
        return None
    return routing.is_on_duty(user)


@login_required
@require_POST
def on_duty(request: HtmxHttpRequest) -> HttpResponse:
    """Go on or off duty (take live chats and callbacks); salespeople and managers only."""
    user = request_user(request)
    if duty_state(user) is None:
        raise PermissionDenied("Only salespeople and managers take live chats.")
    wanted = request.POST.get("on_duty", "")
    status = 200
    error = ""
    if wanted not in ("0", "1"):
        error, status = "Choose on duty or off duty.", 400
    else:
        services.set_on_duty(user=user, on_duty=wanted == "1")
    if request.htmx:
        context = {"duty": routing.is_on_duty(user), "duty_error": error}
        return render(request, "leadcrm/partials/duty_toggle.html", context, status=status)
    if error:  # without JavaScript: the toggle again, with the reason
        return render(request, "leadcrm/on_duty.html", {"duty_error": error}, status=400)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = ""
    return redirect(back or "home")


# --- Follow-ups that need a manager -------------------------------------------------------------


def staff_choices() -> list[tuple[str, str]]:
    """Who may own a follow-up, for the reassign menus: read once per page, not once per row."""
    people = (
        routing.staff().order_by("first_name", "username").only("pk", "first_name", "last_name", "username")
    )
    return [("", "Choose…"), *((str(u.pk), u.get_full_name() or u.username) for u in people)]


class ReassignForm(forms.Form):
    assigned_to = forms.ChoiceField(
        label="Give to",
        error_messages={"invalid_choice": "Pick someone who works here.", "required": "Pick who does it."},
    )

    def __init__(self, *args: Any, choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["assigned_to"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = choices

    def clean_assigned_to(self) -> User:
        user = routing.staff().filter(pk=int(self.cleaned_data["assigned_to"])).first()
        if user is None:  # left between showing the menu and choosing
            raise forms.ValidationError("Pick someone who works here.")
        return user


def _row_context(
    follow_up: FollowUp, form: ReassignForm | None, *, choices: list[tuple[str, str]], now: Any = None
) -> dict[str, Any]:
    now = now or timezone.now()
    if form is None:
        initial = {"assigned_to": str(follow_up.assigned_to_id or "")}
        form = ReassignForm(initial=initial, prefix=f"f{follow_up.pk}", choices=choices)
    return {
        "f": follow_up,
        "form": form,
        "now": now,
        "owner_left": follow_up.assigned_to is not None and not follow_up.assigned_to.is_active,
    }


@manager_required
@require_GET
def follow_ups_attention(request: HttpRequest) -> HttpResponse:
    """Managers: open follow-ups that are overdue or whose owner left, oldest first, to reassign."""
    return _attention_page(request)


def _attention_page(
    request: HttpRequest, *, failed: FollowUp | None = None, failed_form: ReassignForm | None = None
) -> HttpResponse:
    now = timezone.now()
    choices = staff_choices()
    page = Paginator(services.needs_attention(now=now), ATTENTION_PER_PAGE).get_page(request.GET.get("page"))
    rows = [
        _row_context(
            f, failed_form if failed is not None and f.pk == failed.pk else None, choices=choices, now=now
        )
        for f in page
    ]
    if failed is not None and all(r["f"].pk != failed.pk for r in rows):
        rows.insert(0, _row_context(failed, failed_form, choices=choices, now=now))
    status = 400 if failed is not None else 200
    return render(request, "leadcrm/follow_ups_attention.html", {"page": page, "rows": rows}, status=status)


@manager_required
@require_POST
def reassign_follow_up(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Managers: give an open follow-up to someone else (through the service)."""
    follow_up = get_object_or_404(FollowUp.objects.select_related("lead", "assigned_to"), pk=pk)
    choices = staff_choices()
    form = ReassignForm(request.POST, prefix=f"f{follow_up.pk}", choices=choices)
    if form.is_valid():
        try:
            follow_up = services.update_follow_up(
                follow_up=follow_up, changes={"assigned_to": form.cleaned_data["assigned_to"]}
            )
        except ValidationError as exc:  # e.g. the follow-up was done meanwhile
            form.add_error("assigned_to", " ".join(exc.messages))
    if form.errors:
        if request.htmx:
            context = _row_context(follow_up, form, choices=choices)
            return render(request, "leadcrm/partials/attention_row.html", context, status=400)
        return _attention_page(request, failed=follow_up, failed_form=form)
    who = follow_up.assigned_to
    name = (who.get_full_name() or who.username) if who is not None else ""
    if request.htmx:
        context = _row_context(follow_up, None, choices=choices) | {"done_message": f"Given to {name}."}
        return render(request, "leadcrm/partials/attention_row.html", context)
    messages.success(request, f"Follow-up for {follow_up.lead.display_name} given to {name}.")
    return redirect("leadcrm:follow_ups_attention")
