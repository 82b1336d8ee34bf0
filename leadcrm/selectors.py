"""Reads for pages and the API; each selector owns its select_related/prefetch."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from leadcrm.models import CLOSED_STATUSES, Lead


def home_summary(*, user: Any) -> dict[str, int]:
    """Counts for the landing page, in one aggregate query."""
    return Lead.objects.visible_to(user).aggregate(
        total=Count("id"),
        open=Count("id", filter=~Q(status__in=CLOSED_STATUSES)),
        mine=Count("id", filter=Q(owner=user)),
        unassigned=Count("id", filter=Q(owner__isnull=True)),
    )
