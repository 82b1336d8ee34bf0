"""Alerts to signed-in staff pages, pushed over each page's one staff socket (`ws/staff/`).

Every staff page holds one websocket in three groups: its user's, everyone's, and (for managers)
the managers'. `publish` sends an alert after the transaction commits; the page shows it (nav
badge, tab title, waiting strip, opt-in sound and desktop notification). Delivery is best effort
like every broadcast: what an alert announces is stored, and a page that reconnects reloads the
waiting list over HTTP.

An alert is {"type": "staff.alert", "kind": <kind>, ...data}. Kinds:
- "chat.waiting": a visitor asked for a person (data: conversation, lead, name, routed_to, since)
- "chat.offered": nobody answered in time: offered to everyone on duty
- "chat.escalated": still unanswered: managers are told
- "chat.taken": someone joined the chat (the others' strips drop it)
- "followup.overdue": a promise is overdue (owner first, then managers)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from leadcrm.realtime import send_on_commit

ALL_GROUP = "staff.all"
MANAGERS_GROUP = "staff.managers"


def user_group(user_id: int) -> str:
    return f"staff.user.{user_id}"


def publish(
    kind: str,
    data: dict[str, Any],
    *,
    users: Iterable[int] = (),
    managers: bool = False,
    everyone: bool = False,
) -> None:
    """After commit: the alert to the given users' pages, the managers' and/or every staff page."""
    groups = [user_group(pk) for pk in dict.fromkeys(users)]
    if managers:
        groups.append(MANAGERS_GROUP)
    if everyone:
        groups = [ALL_GROUP]  # every staff page is in it: one send, no duplicates
    if groups:
        send_on_commit(groups, {"type": "staff.alert", "kind": kind, **data})
