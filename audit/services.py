"""Writing the audit trail from the application, and scrubbing a person out of it.

`record` is the one call other apps use (the privacy app records exports and erasures with it);
row changes are recorded by PostgreSQL triggers instead (`audit.triggers`). Works on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import pghistory
from django.db import connection, models, transaction
from django.http import HttpRequest

from audit.models import Action, Entry, Source, scrub_in_progress

LEAD_TYPE = "leadcrm.lead"
SCRUBBED_SUMMARY = "Personal data erased; this person's earlier audit rows keep who and when, not what."


def scrubbing() -> bool:
    """True inside `scrub_person`: the only code allowed to change audit rows."""
    return scrub_in_progress.get()


def target_label(target: str | type[models.Model] | models.Model) -> str:
    """'leadcrm.lead' for the Lead model, an instance of it, or the string itself."""
    if isinstance(target, str):
        return target
    return target._meta.label_lower


def _actor(actor: Any) -> tuple[Any, str]:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None, ""
    return actor, str(actor.get_username())[:150]


def _context_id() -> Any:
    # pghistory keeps the open context (one per request or `acting_as` block) in a thread-local.
    value = getattr(pghistory.runtime._tracker, "value", None)
    return value.id if value is not None else None


def record(
    actor: Any,
    action: str,
    target_type: str | type[models.Model] | models.Model,
    target_id: Any = "",
    summary: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    *,
    lead_id: int | None = None,
) -> Entry:
    """Append one row to the audit trail: `actor` (a user, or None for the system) did `action`
    ("viewed", "exported", "changed", "erased", "refused", …) to `target_type` #`target_id`.

    `before`/`after` hold only what changed, never more personal data than the action needs.
    `request` gives the path (without its query string) and method. A lead target, or `lead_id`,
    ties the row to that person (their trail, and `scrub_person`).
    """
    if action not in Action.values:
        raise ValueError(f"Unknown audit action {action!r}; use one of: {', '.join(Action.values)}.")
    user, label = _actor(actor)
    kind = target_label(target_type)
    target = "" if target_id is None else str(target_id)
    if lead_id is None and kind == LEAD_TYPE and target.isdigit():
        lead_id = int(target)
    return Entry.objects.create(
        actor=user,
        actor_label=label,
        action=action,
        target_type=kind[:60],
        target_id=target[:64],
        lead_id=lead_id,
        summary=summary[:300],
        before=before,
        after=after,
        path=request.path[:300] if request is not None else "",
        method=(request.method or "")[:8] if request is not None else "",
        source=Source.APP,
        context_id=_context_id(),
    )


@contextlib.contextmanager
def _scrub_allowed() -> Iterator[None]:
    token = scrub_in_progress.set(True)
    try:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # transaction-local: read by the append-only trigger
                cursor.execute("SELECT set_config('audit.scrub', 'on', true)")
        yield
    finally:
        if connection.vendor == "postgresql" and not connection.needs_rollback:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('audit.scrub', '', true)")
        scrub_in_progress.reset(token)


def scrub_person(lead_id: int) -> int:
    """Remove the personal data of lead `lead_id` from the audit trail; returns the rows scrubbed.

    Every row about the person keeps who did what and when, but loses its before/after values
    (and its summary, except on erasure rows). One "erased" row stays to say an erasure happened
    (added if the caller recorded none). Call it last in the erasure's transaction, after the
    person's rows were deleted or blanked, so the triggers' own rows of that erasure are scrubbed too.
    """
    return scrub_people([lead_id])


def scrub_people(lead_ids: Iterable[int]) -> int:
    """`scrub_person` for many leads at once (retention runs), in a few set-based statements."""
    ids = sorted({int(i) for i in lead_ids})
    if not ids:
        return 0
    scrubbed = 0
    with transaction.atomic(), _scrub_allowed():
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            rows = Entry.objects.filter(lead_id__in=chunk)
            scrubbed += rows.exclude(action=Action.ERASED).update(before=None, after=None, summary="")
            scrubbed += rows.filter(action=Action.ERASED).update(before=None, after=None)
            noted = set(rows.filter(action=Action.ERASED).values_list("lead_id", flat=True))
            Entry.objects.bulk_create(
                Entry(
                    action=Action.ERASED,
                    target_type=LEAD_TYPE,
                    target_id=str(lead_id),
                    lead_id=lead_id,
                    summary=SCRUBBED_SUMMARY,
                    source=Source.APP,
                    context_id=_context_id(),
                )
                for lead_id in chunk
                if lead_id not in noted
            )
    return scrubbed


@contextlib.contextmanager
def acting_as(user: Any = None, **metadata: Any) -> Iterator[None]:
    """Attribute the database changes made inside the block to `user` (management commands,
    tasks, scripts); `metadata` (e.g. command="import_leads") is kept with them. PostgreSQL only:
    on SQLite there are no row triggers, and the block does nothing."""
    if connection.vendor != "postgresql":
        yield
        return
    user_id, label = (user.pk, user.get_username()) if user is not None else (None, "")
    with pghistory.context(user=user_id, username=label, **metadata):
        yield
