"""The CRM's lifecycle signals (leadcrm.signals) become webhook deliveries, in the same transaction
(an import's leads_imported: set-based, for a whole chunk of leads at once)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from leadcrm import signals
from webhooks import services


def _lead_created(sender: Any, *, lead: Any, **kwargs: Any) -> None:
    services.on_lead_created(lead=lead)


def _status_changed(sender: Any, *, lead: Any, status_from: str, status_to: str, **kwargs: Any) -> None:
    services.on_status_changed(lead=lead, status_from=status_from, status_to=status_to)


def _leads_imported(
    sender: Any, *, created: Sequence[int], status_changes: Sequence[tuple[int, str, str]], **kwargs: Any
) -> None:
    services.on_leads_imported(created=created, status_changes=status_changes)


def _grades_changed(sender: Any, *, changes: Any, **kwargs: Any) -> None:
    services.on_grades_changed(changes=changes)


def _chat_handed_off(
    sender: Any, *, lead_id: int | None, conversation_id: int, site_id: int, **kwargs: Any
) -> None:
    services.on_chat_handed_off(lead_id=lead_id, conversation_id=conversation_id, site_id=site_id)


def connect() -> None:
    signals.lead_created.connect(_lead_created, dispatch_uid="webhooks.lead_created")
    signals.lead_status_changed.connect(_status_changed, dispatch_uid="webhooks.lead_status_changed")
    signals.leads_imported.connect(_leads_imported, dispatch_uid="webhooks.leads_imported")
    signals.grades_changed.connect(_grades_changed, dispatch_uid="webhooks.grades_changed")
    signals.chat_handed_off.connect(_chat_handed_off, dispatch_uid="webhooks.chat_handed_off")
