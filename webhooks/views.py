"""Managers' webhook pages under /webhooks/: list and register, edit, the delivery log, replay, test."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from audit.forms import COMMON_ZONES
from leadcrm.http import HtmxHttpRequest, request_user
from leadcrm.permissions import manager_required
from webhooks import services
from webhooks.forms import WebhookForm, reader_zone
from webhooks.models import Delivery, DeliveryStatus, Event, Webhook

PER_PAGE = 50


def _form_errors(form: WebhookForm, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def _zone_context(request: HtmxHttpRequest) -> dict[str, Any]:
    zone = reader_zone(request.GET.get("tz"))
    return {"zone": zone, "zone_name": str(zone), "zones": sorted({*COMMON_ZONES, str(zone)})}


@manager_required
@require_http_methods(["GET", "POST"])
def index(request: HtmxHttpRequest) -> HttpResponse:
    form = WebhookForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                webhook = services.create_webhook(
                    name=data["name"],
                    url=data["url"],
                    events=data["events"],
                    active=data["active"],
                    by=request_user(request),
                )
            except ValidationError as exc:
                _form_errors(form, exc)
            else:
                messages.success(
                    request,
                    "Webhook added. Copy its signing secret below: receivers need it to verify deliveries.",
                )
                return redirect("webhooks:detail", pk=webhook.pk)
        status = 400
    webhooks = Webhook.objects.order_by("name", "pk")
    return render(
        request,
        "webhooks/index.html",
        {"form": form, "webhooks": webhooks, "event_labels": dict(Event.choices)},
        status=status,
    )


@manager_required
@require_http_methods(["GET", "POST"])
def detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    webhook = get_object_or_404(Webhook, pk=pk)
    initial = {"name": webhook.name, "url": webhook.url, "events": webhook.events, "active": webhook.active}
    form = WebhookForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.update_webhook(
                    webhook=webhook,
                    name=data["name"],
                    url=data["url"],
                    events=data["events"],
                    active=data["active"],
                    rotate_secret=request.POST.get("rotate_secret") == "1",
                )
            except ValidationError as exc:
                _form_errors(form, exc)
            else:
                messages.success(request, "Webhook saved.")
                return redirect("webhooks:detail", pk=webhook.pk)
        status = 400
    deliveries = Paginator(
        Delivery.objects.filter(webhook=webhook).order_by("-created_at", "-pk"), PER_PAGE
    ).get_page(request.GET.get("page"))
    context = {
        "webhook": webhook,
        "form": form,
        "deliveries": deliveries,
        "statuses": DeliveryStatus,
        "reveal": request.GET.get("reveal") == "1",
        **_zone_context(request),
    }
    template = (
        "webhooks/partials/deliveries.html"
        if request.htmx and request.htmx.target == "deliveries" and request.method == "GET"
        else "webhooks/detail.html"
    )
    return render(request, template, context, status=status)


@manager_required
@require_POST
def replay(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery, pk=pk)
    services.replay(delivery=delivery)
    messages.success(request, f"Replay of {delivery.event} queued; it appears at the top of the log.")
    return redirect("webhooks:detail", pk=delivery.webhook_id)


@manager_required
@require_POST
def send_test(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    webhook = get_object_or_404(Webhook, pk=pk)
    services.send_test(webhook=webhook, by=request_user(request))
    messages.success(request, "Test event queued; refresh the log in a few seconds to see the answer.")
    return redirect("webhooks:detail", pk=webhook.pk)
