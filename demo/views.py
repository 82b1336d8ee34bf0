"""The demo website: a small business's pages with the chat widget pasted in."""

from __future__ import annotations

import json
import time
from datetime import datetime

from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from chatbot.models import Site
from demo.site import DEMO_SITE_KEY, install_demo_site
from leadcrm.permissions import is_manager
from webhooks.models import Webhook
from webhooks.signing import SIGNATURE_HEADER, verify

DEMO_PAGES = {
    "": ("Home", "Fresh bread, cakes and coffee in the heart of Berlin."),
    "cakes": ("Cakes", "Birthday, wedding and custom cakes, baked to order."),
    "visit": ("Visit us", "Marktstraße 12, open every day 8:00–20:00."),
}


@require_GET
def demo_site(request: HttpRequest, page: str = "") -> HttpResponse:
    """A small business's website with the chat widget pasted in (the demo of the embed)."""
    if page not in DEMO_PAGES:
        raise Http404("No such demo page.")
    site = Site.objects.filter(public_key=DEMO_SITE_KEY).first() or install_demo_site()
    title, lede = DEMO_PAGES[page]
    return render(
        request,
        "demo/site.html",
        {"site": site, "title": title, "lede": lede, "page": page, "pages": DEMO_PAGES},
    )


# --- A webhook receiver for the demo: shows what LeadCRM's webhooks send ----------------------------

RECEIVED_KEY = "demo:webhook-receiver"
RECEIVED_KEEP = 20


@csrf_exempt
@require_http_methods(["GET", "POST"])
def webhook_receiver(request: HttpRequest) -> HttpResponse:
    """POST: what a receiving system does (verify the signature, keep the event); GET: the last
    deliveries, for a manager to see what webhooks send."""
    if request.method == "POST":
        header = request.headers.get(SIGNATURE_HEADER, "")
        path = request.path
        webhook = next((w for w in Webhook.objects.all() if w.url.endswith(path)), None)
        valid = webhook is not None and verify(webhook.secret, request.body, header, now=int(time.time()))
        try:
            body = json.loads(request.body)
        except ValueError:
            body = {"unreadable": True}
        entry = {
            "received_at": timezone.now().isoformat(),
            "event": request.headers.get("X-LeadCRM-Event", ""),
            "signature_valid": valid,
            "body": json.dumps(body, indent=2, sort_keys=True)[:4000],
        }
        cache.set(RECEIVED_KEY, [entry, *cache.get(RECEIVED_KEY, [])][:RECEIVED_KEEP], None)
        return HttpResponse(status=204 if valid else 401)
    if not is_manager(request.user):
        return redirect_to_login(request.get_full_path())
    entries = [
        {**e, "received_at": datetime.fromisoformat(e["received_at"])} for e in cache.get(RECEIVED_KEY, [])
    ]
    return render(request, "demo/webhook_receiver.html", {"entries": entries})
