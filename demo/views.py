"""The demo website: a small business's pages with the chat widget pasted in."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from chatbot.models import Site
from demo.site import DEMO_SITE_KEY, install_demo_site

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
