"""Staff pages of the website chat: live inbox, agent panel, reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chatbot import escalation, faq, realtime, selectors, services
from chatbot.models import Conversation, FaqEntry, Message, Resolution, Sender, Site
from leadcrm import playbook
from leadcrm import services as crm
from leadcrm.http import HtmxHttpRequest, request_user
from leadcrm.models import Lead, StaffProfile
from leadcrm.permissions import can_see_lead, is_manager, is_salesperson, manager_required
from leadcrm.playbook_rules import merge
from leadcrm.signals import lead_accessed


def _visible_lead(request: HttpRequest, lead_id: int, *, answering: bool = False) -> Lead:
    lead = get_object_or_404(Lead, pk=lead_id)
    # `answering`: the chat panel also opens for whoever a live chat on it was routed or offered to.
    if not can_see_lead(request.user, lead) and not (
        answering and lead.conversations.filter(escalation.answerable_by(request.user)).exists()
    ):
        raise Http404("No such lead.")  # 404, not 403: ids of other people's leads do not leak
    lead_accessed.send(sender=Lead, actor=request.user, lead_id=lead.pk, action="viewed", request=request)
    return lead


def _visible_conversation(request: HttpRequest, conversation_id: int) -> Conversation:
    conversation = get_object_or_404(Conversation.objects.select_related("lead", "site"), pk=conversation_id)
    # A chat without a lead (nobody wrote yet) has nothing for staff to see or answer.
    if conversation.lead is None or not (
        can_see_lead(request.user, conversation.lead)
        or Conversation.objects.filter(escalation.answerable_by(request.user), pk=conversation.pk).exists()
    ):
        raise Http404("No such conversation.")
    return conversation


def _panel(
    request: HttpRequest,
    lead: Lead,
    *,
    error: str = "",
    status: int = 200,
    note_error: str = "",
    note_text: str = "",
) -> HttpResponse:
    conversation = selectors.latest_conversation(lead)
    context = {
        "lead": lead,
        "conversation": conversation,
        "messages": selectors.transcript(conversation) if conversation else [],
        "trail": selectors.page_trail(lead),
        "error": error,
        "live": bool(lead.live_until and lead.live_until > timezone.now()),
        "duplicate_of": _duplicate_of(request, lead),
        "typed_email": (lead.custom or {}).get(services.TYPED_EMAIL_KEY, ""),
    }
    context.update(_panel_extras(request, lead, conversation, context["messages"]))
    context.update(note_error=note_error, note_text=note_text)
    return render(request, "chatbot/partials/agent_panel.html", context, status=status)


@dataclass(frozen=True)
class NoteEntry:
    """An internal note in the panel's message list (the template tells it by `sender`)."""

    pk: int
    text: str
    created_at: datetime
    author: str
    sender: str = "note"


def _panel_extras(
    request: HttpRequest, lead: Lead, conversation: Conversation | None, messages: Any
) -> dict[str, Any]:
    """Canned replies merged for this lead and agent, and the transcript with the team's notes."""
    notes = [
        NoteEntry(
            pk=n.pk,
            text=str(n.payload.get("text", "")) if isinstance(n.payload, dict) else "",
            created_at=n.occurred_at,
            author=(n.logged_by.get_full_name() or n.logged_by.username) if n.logged_by else "",
        )
        for n in (services.internal_notes(conversation) if conversation else [])
    ]
    user = request.user
    values = {
        "first_name": lead.first_name or "there",
        "last_name": lead.last_name,
        "company": lead.company_name,
        "agent_name": getattr(user, "first_name", "") or getattr(user, "username", ""),
    }
    return {
        "entries": sorted([*messages, *notes], key=lambda m: m.created_at),
        "canned": [(c.title, merge(c.text, values)) for c in playbook.canned_replies()],
    }


def _duplicate_of(request: HttpRequest, lead: Lead) -> Lead | None:
    """The known lead this chat lead may be, if the user may see it (else the mark shows no name)."""
    if lead.possible_duplicate_of_id is None:
        return None
    known = Lead.objects.filter(pk=lead.possible_duplicate_of_id).first()
    return known if known is not None and can_see_lead(request.user, known) else None


@login_required
@require_GET
def agent_panel(request: HttpRequest, lead_id: int) -> HttpResponse:
    """The live chat of a lead as an HTML fragment (the lead page loads it with hx-get)."""
    return _panel(request, _visible_lead(request, lead_id, answering=True))


@login_required
@require_POST
def take_over(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _visible_conversation(request, conversation_id)
    lead = conversation.lead
    assert lead is not None  # _visible_conversation answers 404 for a chat without a lead
    try:
        services.take_over(conversation=conversation, user=request_user(request))
    except ValidationError as exc:
        return _panel(request, lead, error=" ".join(exc.messages), status=400)
    return _panel(request, lead)


@login_required
@require_POST
def agent_reply(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Post a reply; it reaches the visitor and the panel over the websocket."""
    conversation = _visible_conversation(request, conversation_id)
    try:
        services.post_agent_message(
            conversation=conversation, user=request_user(request), text=request.POST.get("text", "")
        )
    except ValidationError as exc:
        return render(
            request,
            "chatbot/partials/reply_form.html",
            {
                "conversation": conversation,
                "error": " ".join(exc.messages),
                "text": request.POST.get("text", ""),
            },
            status=400,
        )
    return render(request, "chatbot/partials/reply_form.html", {"conversation": conversation})


@login_required
@require_POST
def add_note(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """An internal note on the chat: for the team only, never sent to the visitor."""
    conversation = _visible_conversation(request, conversation_id)
    lead = conversation.lead
    assert lead is not None  # _visible_conversation answers 404 for a chat without a lead
    try:
        services.add_internal_note(
            conversation=conversation, user=request_user(request), text=request.POST.get("note", "")
        )
    except ValidationError as exc:
        return _panel(
            request,
            lead,
            status=400,
            note_error=" ".join(exc.messages),
            note_text=request.POST.get("note", ""),
        )
    return _panel(request, lead)


@login_required
@require_POST
def merge_duplicate(request: HttpRequest, lead_id: int) -> HttpResponse:
    """A salesperson checked that a possible duplicate is the known lead: merge it into that lead."""
    lead = _visible_lead(request, lead_id)
    try:
        target = services.merge_duplicate(duplicate=lead, by=request_user(request))
    except ValidationError as exc:
        return _panel(request, lead, error=" ".join(exc.messages), status=400)
    except PermissionDenied as exc:
        return _panel(request, lead, error=str(exc), status=403)
    return _panel(request, target)


@login_required
@require_GET
def agent_messages(request: HttpRequest, conversation_id: int) -> JsonResponse:
    """Messages after `after` (JSON) so the panel can catch up after its websocket reconnects."""
    conversation = _visible_conversation(request, conversation_id)
    try:
        after = int(request.GET.get("after", 0))
    except ValueError:
        return JsonResponse({"error": "after must be a whole number."}, status=400)
    messages = conversation.messages.filter(id__gt=after).select_related("agent")[:200]
    return JsonResponse(
        {"status": conversation.status, "messages": [realtime.message_json(m) for m in messages]}
    )


@login_required
@require_GET
def inbox(request: HtmxHttpRequest) -> HttpResponse:
    """Live chats (and chats waiting for a person) the user may see."""
    conversations = selectors.live_conversations(user=request.user)
    template = "chatbot/partials/inbox_list.html" if request.htmx else "chatbot/inbox.html"
    return render(request, template, {"conversations": conversations, "selected": request.GET.get("lead")})


@manager_required
@require_GET
def reports(request: HttpRequest) -> HttpResponse:
    """Managers: ratings by site and salesperson, FAQ feedback, and questions the bot could not answer."""
    context = {
        "by_site": selectors.ratings_by_site(),
        "by_agent": selectors.ratings_by_agent(),
        "faq_feedback": selectors.faq_feedback(),
        "unanswered": selectors.unanswered_questions(),
        "unanswered_counts": selectors.unanswered_counts(),
    }
    return render(request, "chatbot/reports.html", context)


def _staff_user(request: HttpRequest) -> User:
    """The signed-in salesperson or manager; 403 for anyone else."""
    user = request_user(request)
    if not (is_manager(user) or is_salesperson(user)):
        raise PermissionDenied("Only salespeople and managers get chat alerts.")
    return user


@login_required
@require_GET
def waiting(request: HttpRequest) -> JsonResponse:
    """The chats waiting for a person that the user may see (the pages' badge, title and strip)."""
    user = _staff_user(request)
    rows = selectors.waiting_conversations(user=user)
    profile = StaffProfile.objects.filter(user=user).only("alert_sound", "alert_desktop").first()
    data = {
        "count": len(rows),
        "now": timezone.now().isoformat(),
        "sound": bool(profile and profile.alert_sound),
        "desktop": bool(profile and profile.alert_desktop),
        "waiting": [
            {
                "conversation": c.pk,
                "lead": c.lead_id,
                "name": c.lead.display_name if c.lead else "",
                "site": c.site.name,
                "since": (c.handoff_at or c.last_message_at).isoformat(),
                "url": reverse("leadcrm:lead", args=[c.lead_id]) + "#live-h",
                "for_you": c.routed_to_id == user.pk,
            }
            for c in rows
        ],
    }
    response = JsonResponse(data)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def alert_preferences(request: HttpRequest) -> HttpResponse:
    """The user's alert opt-ins (sound, desktop notification): JSON for the page's script, else back."""
    user = _staff_user(request)
    values: dict[str, bool] = {}
    for key in ("alert_sound", "alert_desktop"):
        raw = request.POST.get(key)
        if raw is not None:
            if raw not in ("0", "1", "on", "off", "true", "false"):
                return JsonResponse({"error": f"{key} must be on or off."}, status=400)
            values[key] = raw in ("1", "on", "true")
    if not values:
        return JsonResponse({"error": "Nothing to change: send alert_sound or alert_desktop."}, status=400)
    profile = crm.update_staff_profile(user=user, **values)
    if request.headers.get("accept", "").startswith("application/json"):
        return JsonResponse({"sound": profile.alert_sound, "desktop": profile.alert_desktop})
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("leadcrm:queue")
    return redirect(back)


# --- Unanswered questions (managers): turn one into FAQ in one click, or dismiss it ---------------


def _unanswered_context(site: Site, *, error: str = "") -> dict[str, Any]:
    entries = list(FaqEntry.objects.filter(site=site).order_by("question").only("id", "question", "active"))
    groups = selectors.unanswered_groups(site)
    for group in groups:
        group["closest"] = faq.closest_faq(site, group["message"].text)
    return {
        "site": site,
        "sites": Site.objects.order_by("name").only("id", "name"),
        "groups": groups,
        "entries": entries,
        "calibration": site.faq_calibration or {},
        "error": error,
    }


def _unanswered_row(site: Site, **extra: Any) -> dict[str, Any]:
    return {
        "site": site,
        "entries": FaqEntry.objects.filter(site=site).order_by("question").only("id", "question", "active"),
        **extra,
    }


@manager_required
@require_GET
def unanswered(request: HttpRequest, site_id: int | None = None) -> HttpResponse:
    """Managers: a site's questions the bot did not answer (or whose answer did not help), newest first."""
    if site_id is None:
        site = Site.objects.order_by("name").first()
        if site is None:
            return render(request, "chatbot/unanswered.html", {"site": None, "groups": []})
        return redirect("chatbot:unanswered_site", site_id=site.pk)
    site = get_object_or_404(Site, pk=site_id)
    return render(request, "chatbot/unanswered.html", _unanswered_context(site))


def _done(request: HtmxHttpRequest, site: Site, text: str) -> HttpResponse:
    if request.htmx:
        return render(request, "chatbot/partials/unanswered_done.html", {"text": text})
    flash.success(request, text)
    return redirect("chatbot:unanswered_site", site_id=site.pk)


def _open_question(site: Site, message_id: int) -> Message:
    question = Message.objects.filter(
        pk=message_id,
        conversation__site=site,
        sender=Sender.VISITOR,
        unanswered=True,
        resolution=Resolution.OPEN,
    ).first()
    if question is None:
        raise Http404("No such open question on this site.")  # another site's id leaks nothing
    return question


@manager_required
@require_POST
def unanswered_variant(request: HtmxHttpRequest, site_id: int, message_id: int) -> HttpResponse:
    """Add the question (and its group) as a variant of an FAQ entry of the same site."""
    site = get_object_or_404(Site, pk=site_id)
    question = _open_question(site, message_id)
    try:
        entry = faq.add_as_variant(
            site=site,
            message_id=question.pk,
            entry_id=_int(request.POST.get("entry")),
            by=request_user(request),
        )
    except ValidationError as exc:
        return _question_error(request, site, question, " ".join(exc.messages))
    return _done(request, site, f"Added “{question.text}” to the FAQ entry “{entry.question}”.")


@manager_required
@require_POST
def unanswered_dismiss(request: HtmxHttpRequest, site_id: int, message_id: int) -> HttpResponse:
    """Take the question (and its group) off the list; the FAQ stays as it is."""
    site = get_object_or_404(Site, pk=site_id)
    question = _open_question(site, message_id)
    faq.dismiss(site=site, message_id=question.pk, by=request_user(request))
    return _done(request, site, f"Dismissed “{question.text}”.")


@manager_required
@require_http_methods(["GET", "POST"])
def unanswered_entry(request: HtmxHttpRequest, site_id: int, message_id: int) -> HttpResponse:
    """A new FAQ entry from the question: the form, pre-filled (GET), and saving it (POST)."""
    site = get_object_or_404(Site, pk=site_id)
    question = _open_question(site, message_id)
    closest = faq.closest_faq(site, question.text)
    template = (
        "chatbot/partials/unanswered_entry_form.html" if request.htmx else "chatbot/unanswered_entry.html"
    )
    context: dict[str, Any] = {
        "site": site,
        "question": question,
        "closest": closest,
        "form_question": question.text[:300],
        "form_answer": "",
        "errors": {},
    }
    if request.method == "GET":
        return render(request, template, context)
    context["form_question"] = request.POST.get("question", "")
    context["form_answer"] = request.POST.get("answer", "")
    try:
        entry = faq.add_as_entry(
            site=site,
            message_id=question.pk,
            question=context["form_question"],
            answer=context["form_answer"],
            by=request_user(request),
        )
    except ValidationError as exc:
        context["errors"] = {k: " ".join(v) for k, v in exc.message_dict.items()}
        return render(request, template, context, status=400)
    return _done(request, site, f"New FAQ entry “{entry.question}” saved; the bot answers it from now on.")


@manager_required
@require_POST
def faq_threshold(request: HtmxHttpRequest, site_id: int) -> HttpResponse:
    """A manager keeps the calibrated answer threshold or sets their own."""
    site = get_object_or_404(Site, pk=site_id)
    auto = request.POST.get("mode") != "manual"
    raw = request.POST.get("threshold", "").strip()
    try:
        value = float(raw) if raw else None
    except ValueError:
        value = -1.0  # full_clean reports it as out of range
    try:
        faq.set_threshold(site=site, auto=auto, threshold=value)
    except ValidationError as exc:
        site.refresh_from_db()
        context = _unanswered_context(site, error=" ".join(exc.messages))
        return render(request, "chatbot/unanswered.html", context, status=400)
    flash.success(request, "Answer threshold saved.")
    return redirect("chatbot:unanswered_site", site_id=site.pk)


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise ValidationError({"entry": "Choose an FAQ entry of this site."}) from None


def _question_error(request: HtmxHttpRequest, site: Site, question: Message, error: str) -> HttpResponse:
    if request.htmx:
        group = {
            "message": question,
            "count": 1,
            "others": [],
            "closest": faq.closest_faq(site, question.text),
        }
        context = _unanswered_row(site, group=group, error=error)
        return render(request, "chatbot/partials/unanswered_row.html", context, status=400)
    return render(request, "chatbot/unanswered.html", _unanswered_context(site, error=error), status=400)
