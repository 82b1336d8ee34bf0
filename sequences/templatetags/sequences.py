"""{% lead_sequence_card %}: the lead panel's sequence card (the panel is the CRM core's template)."""

from __future__ import annotations

from typing import Any

from django import template

from sequences import selectors

register = template.Library()


@register.inclusion_tag("sequences/partials/lead_card.html", takes_context=True)
def lead_sequence_card(context: Any) -> dict[str, Any]:
    lead = context["lead"]
    return {
        "card": selectors.lead_card(lead=lead, user=context["user"]),
        "lead": lead,
        "enrol_form": None,
        "csrf_token": context.get("csrf_token"),
        "request": context.get("request"),
    }
