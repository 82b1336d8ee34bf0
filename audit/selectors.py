"""Reads of the audit trail for the page."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from audit.models import Entry


def trail(
    *,
    actor: str = "",
    action: str = "",
    target_type: str = "",
    target_id: str = "",
    lead: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> list[Entry]:
    """Newest first; `limit` rows from `offset` (no COUNT over a table that only grows)."""
    rows = Entry.objects.select_related("actor")
    if actor:
        rows = rows.filter(Q(actor__username__iexact=actor) | Q(actor_label__iexact=actor))
    if action:
        rows = rows.filter(action=action)
    if target_type:
        rows = rows.filter(target_type=target_type)
    if target_id:
        rows = rows.filter(target_id=target_id)
    if lead is not None:
        rows = rows.filter(lead_id=lead)
    if since is not None:
        rows = rows.filter(at__gte=since)
    if until is not None:
        rows = rows.filter(at__lt=until)
    return list(rows.order_by("-at", "-id")[offset : offset + limit])
