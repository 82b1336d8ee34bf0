"""The demo bakery's chat site: Rosa's Bakery & Café in Berlin, its FAQ and proactive messages."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from chatbot import bot
from chatbot.models import FaqEntry, ProactiveMessage, Site

DEMO_SITE_KEY = "pk_demo_rosas_bakery"

DEMO_FAQ: list[tuple[str, list[str], str]] = [
    (
        "What are your opening hours?",
        ["When are you open?", "Are you open on Sunday?", "What time do you close?", "opening times"],
        "We're open every day 8:00–20:00. The café kitchen closes at 19:00.",
    ),
    (
        "Where are you located?",
        ["What is your address?", "How do I find you?", "where is the bakery", "directions"],
        "Rosa's Bakery is at Marktstraße 12, 10115 Berlin, next to the flower market.",
    ),
    (
        "Is there parking nearby?",
        ["Where can I park?", "car park", "parking spaces"],
        "There are free parking spaces behind the building, and a public car park 100 m away.",
    ),
    (
        "Do you deliver?",
        ["Can you deliver to my home?", "delivery area", "do you ship cakes", "home delivery cost"],
        "We deliver within 10 km for €5 (free over €60). Order by 18:00 for next-day delivery.",
    ),
    (
        "Can I order a custom cake?",
        ["Do you make birthday cakes?", "personalised cake", "cake with a photo", "order a cake for a party"],
        "Yes! Custom cakes start at €35. Order at least 3 days ahead; tell us the size, flavour and design.",
    ),
    (
        "Do you make wedding cakes?",
        ["wedding cake prices", "tiered cake for a wedding", "cake tasting for wedding"],
        "We do: tiered wedding cakes from €250, with a free tasting session. Book 6–8 weeks ahead.",
    ),
    (
        "Do you have gluten-free options?",
        ["gluten free bread", "coeliac friendly", "celiac", "wheat-free cakes"],
        "Yes, we bake gluten-free bread and two gluten-free cakes daily in a separate area.",
    ),
    (
        "Do you have vegan products?",
        ["vegan cakes", "dairy free", "egg-free", "plant based"],
        "Several: vegan croissants, banana bread and a vegan chocolate cake. Ask for the daily list.",
    ),
    (
        "How do you handle allergies?",
        ["allergens", "nut allergy", "does it contain nuts", "allergy information"],
        "Every product has an allergen card at the counter. Our kitchen handles nuts, so traces are possible.",
    ),
    (
        "Which payment methods do you accept?",
        ["Can I pay by card?", "do you accept credit cards", "do you take cash", "apple pay", "paypal"],
        "Cash, all major cards, Apple Pay and Google Pay. Online orders can be paid by card or PayPal.",
    ),
    (
        "Do you offer catering?",
        ["catering for an office", "event catering", "breakfast for a meeting", "party platters"],
        "Yes: breakfast and cake platters for 10–200 people. We need 48 hours' notice.",
    ),
    (
        "Can I reserve a table?",
        ["table booking", "book a table for brunch", "reservations"],
        "Tables for 6 or more can be reserved; smaller groups are first come, first served.",
    ),
    (
        "Do you sell gift cards?",
        ["gift voucher", "gift certificate", "present for a friend"],
        "Gift cards from €10 are sold in the shop and online, valid for 3 years.",
    ),
    (
        "Do you have Wi-Fi?",
        ["wifi password", "internet in the café", "can I work from the café"],
        "Free Wi-Fi for café guests; ask the staff for today's password.",
    ),
    (
        "Are dogs allowed?",
        ["can I bring my dog", "pet friendly", "pets allowed"],
        "Dogs are welcome on the terrace and in the café (not behind the counter). Water bowls are by the door.",
    ),
    (
        "How far in advance should I order?",
        ["last minute order", "same day cake", "order deadline"],
        "Regular items: order by 18:00 the day before. Custom cakes: 3 days. Wedding cakes: 6–8 weeks.",
    ),
]


@transaction.atomic
def install_demo_site(*, origins: Sequence[str] = ()) -> Site:
    """Create or refresh the demo bakery site (key pk_demo_rosas_bakery) with FAQ and proactive messages."""
    allowed = ["http://127.0.0.1:8000", "http://localhost:8000", *origins]
    site, _ = Site.objects.get_or_create(
        public_key=DEMO_SITE_KEY,
        defaults={"name": "Rosa's Bakery & Café", "timezone": "Europe/Berlin"},
    )
    site.allowed_origins = sorted(set(site.allowed_origins) | set(allowed))
    site.business_hours = {day: [["08:00", "20:00"]] for day in bot.WEEKDAYS}
    site.greetings = {
        "morning": "Good morning{name}! Fresh croissants are out. How can I help?",
        "afternoon": "Good afternoon{name}! Looking for a cake, an order or our café?",
        "evening": "Good evening{name}! How can I help?",
        "night": "Hello{name}! Up late? I can answer questions about the bakery.",
    }
    site.brand_color = "#a0452e"
    site.privacy_text = (
        "Rosa's Bakery stores your name and contact details only to answer your request, "
        "and your marketing consent only if you give it. Ask us any time to delete them."
    )
    site.full_clean()
    site.save()
    for question, variants, answer in DEMO_FAQ:
        FaqEntry.objects.update_or_create(
            site=site,
            question=question,
            defaults={"variants": "\n".join(variants), "answer": answer, "active": True},
        )
    for text, url_contains, delay in [
        ("Planning a celebration? Ask me about custom cakes.", "cakes", 5),
        ("Hi! Questions about our bakery? I'm here to help.", "", 20),
    ]:
        ProactiveMessage.objects.update_or_create(
            site=site,
            text=text,
            defaults={"url_contains": url_contains, "delay_seconds": delay, "active": True},
        )
    return site
