"""The business's playbook: read (cached) for every lead panel, changed by managers.

The one write path for playbooks and canned replies: every change bumps the playbook's
`updated_at`, which retires the rules loaded in every process, so the next lead panel uses them. Without a chosen playbook the rules are empty: the panel then shows
only the lines that do not depend on the business (frustration, live chat, overdue work…) and the
playbook page asks a manager to pick the closest kind of business.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from leadcrm.permissions import is_manager
from leadcrm.playbook_models import CannedReply, Playbook, PlaybookKind, PlaybookRule
from leadcrm.playbook_rules import DEFAULTS, Rule

EDITABLE = ("signal", "match", "talking_point", "next_step")


def current() -> Playbook | None:
    return Playbook.objects.order_by("id").first()


def rules() -> tuple[Rule, ...]:
    """The playbook's rules in order, for every lead panel.

    One indexed one-row query says which version is current (id, updated_at); the rules of that
    version are read once per process and kept. Every change bumps `updated_at`, so a save is seen
    by the next panel in every process, with no cache to clear and nothing stale after a restore.
    """
    stamp = Playbook.objects.order_by("id").values_list("id", "updated_at").first()
    if stamp is None:
        return ()
    found = _loaded.get(stamp)
    if found is None:
        rows = PlaybookRule.objects.filter(playbook_id=stamp[0]).order_by("position", "id")
        found = tuple(Rule(*row) for row in rows.values_list(*EDITABLE))
        if len(_loaded) >= 8:
            _loaded.clear()
        _loaded[stamp] = found
    return found


_loaded: dict[tuple[int, Any], tuple[Rule, ...]] = {}


def _changed(playbook: Playbook, by: Any) -> None:
    """Record who changed it; the new `updated_at` retires the loaded rules everywhere."""
    playbook.updated_by = by
    playbook.save(update_fields=["updated_by", "updated_at"])


def _require_manager(by: Any) -> None:
    if not is_manager(by):
        raise PermissionDenied("Only managers can change the playbook.")


@transaction.atomic
def apply_defaults(*, kind: str, by: Any = None) -> Playbook:
    """Start (or start over) from the default playbook for a kind of business."""
    if by is not None:
        _require_manager(by)
    if kind not in DEFAULTS:
        raise ValidationError({"kind": f"Choose one of: {', '.join(PlaybookKind.values)}."})
    playbook = current() or Playbook.objects.create(kind=kind)
    playbook.kind = kind
    playbook.save(update_fields=["kind"])
    playbook.rules.all().delete()
    PlaybookRule.objects.bulk_create(
        PlaybookRule(
            playbook=playbook,
            position=(i + 1) * 10,
            signal=r.signal,
            match=r.match,
            talking_point=r.talking_point,
            next_step=r.next_step,
        )
        for i, r in enumerate(DEFAULTS[kind])
    )
    _changed(playbook, by)
    return playbook


def _validated(rule: PlaybookRule) -> PlaybookRule:
    rule.match = ", ".join(p.strip() for p in rule.match.split(",") if p.strip())
    rule.talking_point = rule.talking_point.strip()
    rule.next_step = rule.next_step.strip()
    rule.full_clean(exclude=["playbook"])
    return rule


@transaction.atomic
def save_rule(*, by: Any, rule_id: int | None, data: dict[str, str]) -> PlaybookRule:
    """Add a rule (at the end) or change one; ValidationError names the field at fault."""
    _require_manager(by)
    playbook = current()
    if playbook is None:
        playbook = Playbook.objects.create(kind=PlaybookKind.SHOP)
    if rule_id is None:
        last = playbook.rules.order_by("-position").values_list("position", flat=True).first() or 0
        rule = PlaybookRule(playbook=playbook, position=last + 10)
    else:
        rule = PlaybookRule.objects.select_for_update().get(pk=rule_id, playbook=playbook)
    for field in EDITABLE:
        setattr(rule, field, str(data.get(field, "")))
    _validated(rule).save()
    _changed(playbook, by)
    return rule


@transaction.atomic
def delete_rule(*, by: Any, rule_id: int) -> None:
    _require_manager(by)
    playbook = current()
    if playbook is not None:
        playbook.rules.filter(pk=rule_id).delete()
        _changed(playbook, by)


@transaction.atomic
def move_rule(*, by: Any, rule_id: int, up: bool) -> None:
    """Swap a rule with its neighbour: earlier rules win the next step."""
    _require_manager(by)
    playbook = current()
    if playbook is None:
        return
    ordered = list(playbook.rules.select_for_update().order_by("position", "id"))
    index = next((i for i, r in enumerate(ordered) if r.pk == rule_id), None)
    if index is None:
        return
    other = index - 1 if up else index + 1
    if 0 <= other < len(ordered):
        ordered[index], ordered[other] = ordered[other], ordered[index]
    for i, r in enumerate(ordered):
        r.position = (i + 1) * 10
    PlaybookRule.objects.bulk_update(ordered, ["position"])
    _changed(playbook, by)


# --- Canned replies -------------------------------------------------------------------------------


def canned_replies() -> Sequence[CannedReply]:
    return list(CannedReply.objects.order_by("title"))


@transaction.atomic
def save_canned_reply(*, by: Any, reply_id: int | None, title: str, text: str) -> CannedReply:
    """Add or change a canned reply; an unknown merge field is a ValidationError on `text`."""
    if not is_manager(by):
        raise PermissionDenied("Only managers can change canned replies.")
    reply = CannedReply() if reply_id is None else CannedReply.objects.select_for_update().get(pk=reply_id)
    reply.title = title.strip()
    reply.text = text.strip()
    reply.full_clean()
    reply.save()
    return reply


@transaction.atomic
def delete_canned_reply(*, by: Any, reply_id: int) -> None:
    if not is_manager(by):
        raise PermissionDenied("Only managers can change canned replies.")
    CannedReply.objects.filter(pk=reply_id).delete()
