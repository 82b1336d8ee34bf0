"""The playbook page and the canned replies page: managers edit, everyone else gets a 403.

HTMX posts get the edited list back (errors in place, status 400); without JavaScript a success
redirects to the page and an error re-renders the whole page with the form and its error.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from leadcrm import playbook, selectors, views
from leadcrm.http import HtmxHttpRequest
from leadcrm.permissions import manager_required
from leadcrm.playbook_models import CannedReply, PlaybookKind, PlaybookRule
from leadcrm.playbook_rules import MERGE_FIELDS, SIGNAL_CHOICES

HINTS = {
    "page": "Page paths, comma-separated; a path matches when the visited page's path ends with it: /wedding-cakes, /menu/*",
    "chat": "Words or phrases the visitor wrote: discount, offer, cheaper",
    "interest": "Words of what they told the chat they are interested in: wedding, catering",
    "download": "Words of the downloaded title, or empty for any download",
    "job_title": "Words of the job title: owner, manager",
    "status": "One or more of: new, working, qualified, won, lost, disqualified",
    "grade": "Grade letters or grades: A, B1",
    "probability": "A percentage: 50",
}


class RuleForm(forms.Form):
    signal = forms.ChoiceField(choices=SIGNAL_CHOICES)
    match = forms.CharField(max_length=200, required=False)
    talking_point = forms.CharField(max_length=300, required=False)
    next_step = forms.CharField(max_length=200, required=False)


class KindForm(forms.Form):
    kind = forms.ChoiceField(choices=PlaybookKind.choices, label="Kind of business")


class CannedReplyForm(forms.Form):
    title = forms.CharField(max_length=80)
    text = forms.CharField(max_length=2000, widget=forms.Textarea)


def _fragment(request: HtmxHttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


def _add_errors(form: forms.Form, exc: ValidationError) -> None:
    for field, errors in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
        form.add_error(field if field in form.fields else None, errors)


# --- Playbook ---------------------------------------------------------------------------------------


def _playbook_context(
    *, failed_id: int | None = None, failed_form: RuleForm | None = None, kind_form: KindForm | None = None
) -> dict[str, Any]:
    current = playbook.current()
    rules = list(current.rules.all()) if current is not None else []
    rows = []
    for rule in rules:
        form = failed_form if failed_id == rule.pk and failed_form is not None else None
        form = form or RuleForm(
            initial={f: getattr(rule, f) for f in ("signal", "match", "talking_point", "next_step")},
            prefix=f"r{rule.pk}",
        )
        rows.append({"rule": rule, "form": form})
    new_form = failed_form if failed_id is None and failed_form is not None else RuleForm(prefix="new")
    return {
        "playbook": current,
        "rows": rows,
        "new_form": new_form,
        "kind_form": kind_form or KindForm(initial={"kind": current.kind if current else PlaybookKind.SHOP}),
        "hints": HINTS,
        "signal_choices": SIGNAL_CHOICES,
    }


def _render_playbook(request: HtmxHttpRequest, *, status: int = 200, **kwargs: Any) -> HttpResponse:
    template = "leadcrm/partials/playbook_rules.html" if _fragment(request) else "leadcrm/playbook.html"
    return render(request, template, _playbook_context(**kwargs), status=status)


def _done(request: HtmxHttpRequest, text: str) -> HttpResponse:
    messages.success(request, text)
    if _fragment(request):
        return _render_playbook(request)
    return redirect("leadcrm:playbook")


@manager_required
@require_GET
def playbook_page(request: HtmxHttpRequest) -> HttpResponse:
    return _render_playbook(request)


@manager_required
@require_POST
def playbook_start(request: HtmxHttpRequest) -> HttpResponse:
    """Replace the rules with the default playbook of a kind of business."""
    form = KindForm(request.POST)
    if not form.is_valid():
        return _render_playbook(request, status=400, kind_form=form)
    playbook.apply_defaults(kind=form.cleaned_data["kind"], by=request.user)
    return _done(request, f"Started from the playbook for: {PlaybookKind(form.cleaned_data['kind']).label}.")


@manager_required
@require_POST
def playbook_rule_save(request: HtmxHttpRequest, rule_id: int | None = None) -> HttpResponse:
    """Add a rule (rule_id None) or change one."""
    if rule_id is not None and not PlaybookRule.objects.filter(pk=rule_id).exists():
        raise Http404("No such rule.")
    form = RuleForm(request.POST, prefix="new" if rule_id is None else f"r{rule_id}")
    if form.is_valid():
        try:
            playbook.save_rule(by=request.user, rule_id=rule_id, data=form.cleaned_data)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            return _done(request, "Rule added." if rule_id is None else "Rule saved.")
    return _render_playbook(request, status=400, failed_id=rule_id, failed_form=form)


@manager_required
@require_POST
def playbook_rule_delete(request: HtmxHttpRequest, rule_id: int) -> HttpResponse:
    playbook.delete_rule(by=request.user, rule_id=rule_id)
    return _done(request, "Rule deleted.")


@manager_required
@require_POST
def playbook_rule_move(request: HtmxHttpRequest, rule_id: int) -> HttpResponse:
    direction = request.POST.get("direction")
    if direction not in ("up", "down"):
        messages.error(request, "Move a rule up or down.")
        return _render_playbook(request, status=400)
    playbook.move_rule(by=request.user, rule_id=rule_id, up=direction == "up")
    return _done(request, "Rule moved.")


# --- Canned replies ---------------------------------------------------------------------------------


def _canned_context(
    *, failed_id: int | None = None, failed_form: CannedReplyForm | None = None
) -> dict[str, Any]:
    rows = []
    for reply in playbook.canned_replies():
        form = failed_form if failed_id == reply.pk and failed_form is not None else None
        rows.append(
            {
                "reply": reply,
                "form": form
                or CannedReplyForm(initial={"title": reply.title, "text": reply.text}, prefix=f"c{reply.pk}"),
            }
        )
    new_form = failed_form if failed_id is None and failed_form is not None else CannedReplyForm(prefix="new")
    return {"rows": rows, "new_form": new_form, "merge_fields": ["{" + f + "}" for f in MERGE_FIELDS]}


def _render_canned(request: HtmxHttpRequest, *, status: int = 200, **kwargs: Any) -> HttpResponse:
    template = "leadcrm/partials/canned_replies.html" if _fragment(request) else "leadcrm/canned_replies.html"
    return render(request, template, _canned_context(**kwargs), status=status)


@manager_required
@require_GET
def canned_replies_page(request: HtmxHttpRequest) -> HttpResponse:
    return _render_canned(request)


@manager_required
@require_POST
def canned_reply_save(request: HtmxHttpRequest, reply_id: int | None = None) -> HttpResponse:
    if reply_id is not None and not CannedReply.objects.filter(pk=reply_id).exists():
        raise Http404("No such canned reply.")
    form = CannedReplyForm(request.POST, prefix="new" if reply_id is None else f"c{reply_id}")
    if form.is_valid():
        try:
            playbook.save_canned_reply(
                by=request.user,
                reply_id=reply_id,
                title=form.cleaned_data["title"],
                text=form.cleaned_data["text"],
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, "Canned reply saved.")
            if _fragment(request):
                return _render_canned(request)
            return redirect("leadcrm:canned_replies")
    return _render_canned(request, status=400, failed_id=reply_id, failed_form=form)


@manager_required
@require_POST
def canned_reply_delete(request: HtmxHttpRequest, reply_id: int) -> HttpResponse:
    playbook.delete_canned_reply(by=request.user, reply_id=reply_id)
    messages.success(request, "Canned reply deleted.")
    if _fragment(request):
        return _render_canned(request)
    return redirect("leadcrm:canned_replies")


# --- Lead panel: the next lead ----------------------------------------------------------------------


@login_required
@require_GET
def next_lead(request: HtmxHttpRequest, lead_id: int) -> HttpResponse:
    """Open the lead after this one in the viewer's queue (after logging an outcome)."""
    lead = selectors.visible_lead(user=request.user, lead_id=lead_id)
    following = selectors.next_in_queue(user=request.user, lead=lead)
    if following is None:
        messages.info(request, "No other open lead in your queue.")
        following = lead
    if not _fragment(request):
        return redirect("leadcrm:lead", lead_id=following.pk)
    response = views._render_panel(request, following.pk)
    response["HX-Push-Url"] = reverse("leadcrm:lead", kwargs={"lead_id": following.pk})
    return response
