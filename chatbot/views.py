"""Staff pages of the website chat: live inbox, agent panel, reports."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from chatbot import realtime, selectors, services
from chatbot.models import Conversation
from leadcrm.http import HtmxHttpRequest, request_user
from leadcrm.models import Lead
from leadcrm.permissions import can_see_lead, manager_required
from leadcrm.signals import lead_accessed


def _visible_lead(request: HttpRequest, lead_id: int) -> Lead:
    lead = get_object_or_404(Lead, pk=lead_id)
    if not can_see_lead(request.user, lead):
        raise Http404("No such lead.")  # 404, not 403: ids of other people's leads do not leak
    lead_accessed.send(sender=Lead, actor=request.user, lead_id=lead.pk, action="viewed", request=request)
    return lead


def _visible_conversation(request: HttpRequest, conversation_id: int) -> Conversation:
    conversation = get_object_or_404(Conversation.objects.select_related("lead", "site"), pk=conversation_id)
    # A chat without a lead (nobody wrote yet) has nothing for staff to see or answer.
    if conversation.lead is None or not can_see_lead(request.user, conversation.lead):
        raise Http404("No such conversation.")
    return conversation


def _panel(request: HttpRequest, lead: Lead, *, error: str = "", status: int = 200) -> HttpResponse:
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
    return render(request, "chatbot/partials/agent_panel.html", context, status=status)


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
    return _panel(request, _visible_lead(request, lead_id))


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
    }
    return render(request, "chatbot/reports.html", context)
