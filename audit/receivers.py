"""The audit trail's listeners: a lead opened in the CRM becomes a "viewed" row."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest

from audit import services
from audit.models import Action
from leadcrm.signals import lead_accessed

# A panel re-rendered after each action, the timeline paged, the API polled: one "viewed" row per
# person, lead and window is enough to answer "who looked at this lead, and when".
VIEW_WINDOW_SECONDS = 300
KEY_PREFIX = "audit:viewed"


def record_lead_access(
    sender: Any,
    *,
    actor: Any,
    lead_id: int,
    action: str = Action.VIEWED,
    request: HttpRequest | None = None,
    **kwargs: Any,
) -> None:
    """Record that `actor` opened lead `lead_id` (at most once per VIEW_WINDOW_SECONDS for views)."""
    # The database's name in the key: several databases (tests in parallel) may share one cache.
    seen_key = f"{KEY_PREFIX}:{connection.settings_dict['NAME']}:{getattr(actor, 'pk', None)}:{lead_id}"
    if action == Action.VIEWED and not cache.add(seen_key, 1, timeout=VIEW_WINDOW_SECONDS):
        return
    services.record(actor, action, services.LEAD_TYPE, lead_id, request=request)


def connect() -> None:
    lead_accessed.connect(record_lead_access, dispatch_uid="audit.record_lead_access")
