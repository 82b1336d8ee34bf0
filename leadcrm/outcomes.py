"""Logging what a salesperson did with a lead: a call/email/meeting/note and an optional status change.

Both writes go through `leadcrm.services` (which queue the rescore after commit), inside one
transaction so a failed status change does not leave a half-logged outcome.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from leadcrm import services
from leadcrm.models import Channel, Interaction, Lead
from leadcrm.permissions import can_change_lead

# What the form offers → (interaction kind, channel). An email the salesperson sent has no kind of
# its own (EMAIL_REPLY is the lead answering), so it is a note on the email channel.
OUTCOME_KINDS: dict[str, tuple[str, str]] = {
    "call": ("call", Channel.PHONE),
    "email": ("note", Channel.EMAIL),
    "meeting": ("meeting", Channel.IN_PERSON),
    "note": ("note", Channel.OTHER),
}


def log_outcome(
    *,
    lead: Lead,
    by: Any,
    kind: str,
    notes: str = "",
    status: str = "",
    lost_reason: str = "",
    duration_min: int | None = None,
) -> Interaction | None:
    """Record the contact (if any notes or a contact kind) and change the status; one transaction.

    Raises PermissionDenied when `by` may not change the lead, ValidationError on bad input.
    """
    if not can_change_lead(by, lead):
        raise PermissionDenied(
            "Claim this lead before logging outcomes on it."
            if lead.owner_id is None
            else "This lead belongs to someone else."
        )
    if kind not in OUTCOME_KINDS:
        raise ValidationError({"kind": f"Unknown outcome {kind!r}. Use one of: {', '.join(OUTCOME_KINDS)}."})
    interaction_kind, channel = OUTCOME_KINDS[kind]
    payload: dict[str, Any] = {"text": notes.strip(), "outcome": kind}
    if duration_min:
        payload["duration_s"] = int(duration_min) * 60
    with transaction.atomic():
        interaction = None
        if notes.strip() or kind != "note":
            interaction = services.record_interaction(
                lead=lead, kind=interaction_kind, channel=channel, payload=payload, logged_by=by
            )
            # record_interaction updated the row in SQL; change_status saves the whole object.
            lead.refresh_from_db(fields=["last_activity_at", "rescore_requested_at"])
        if status and status != lead.status:
            services.change_status(
                lead=lead, status=status, by=by, lost_reason=lost_reason, note=notes.strip()
            )
        elif not interaction:
            raise ValidationError(
                {"notes": "Write a note or change the status — there is nothing to log yet."}
            )
    return interaction
