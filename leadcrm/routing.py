"""Who takes a live chat or a promise: one routing rule for chats, callbacks and follow-ups.

Chats (`route`), taken now:
1. The lead's owner, if they are on duty.
2. Otherwise round robin among the salespeople on duty (the one routed to least recently), and
   among the managers on duty when no salesperson is.
3. Nobody on duty: the chat waits for anyone (`route` returns None).

Promises (`promise_owner`: a callback, a follow-up), kept later, never without an owner:
1. The lead's owner (active, with a role), on duty or not: it is their lead and the promise is due
   later.
2. Otherwise `route`'s round robin among the people on duty now.
3. Nobody on duty: the given fallback (e.g. the chat site's hand-off person), else the manager with
   the fewest open follow-ups.

Only active users with a role (Salesperson, Manager, or a superuser) are ever chosen. Taking a
turn stamps `StaffProfile.last_routed_at`; the turn is taken under a row lock with SKIP LOCKED, so
two chats handed off at the same moment go to two different people, and nobody waits on a lock.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet

from leadcrm.models import Lead, StaffProfile
from leadcrm.permissions import MANAGER_GROUP, SALESPERSON_GROUP


def staff() -> QuerySet[User]:
    """Active users with a role: salespeople, managers and superusers."""
    return User.objects.filter(
        Q(groups__name__in=(SALESPERSON_GROUP, MANAGER_GROUP)) | Q(is_superuser=True), is_active=True
    ).distinct()


def salespeople() -> QuerySet[User]:
    return User.objects.filter(groups__name=SALESPERSON_GROUP, is_active=True).distinct()


def managers() -> QuerySet[User]:
    return User.objects.filter(
        Q(groups__name=MANAGER_GROUP) | Q(is_superuser=True), is_active=True
    ).distinct()


def on_duty() -> QuerySet[User]:
    """Staff taking live chats and callbacks now."""
    return staff().filter(staff_profile__on_duty=True)


def anyone_on_duty() -> bool:
    return on_duty().exists()


def is_on_duty(user: Any) -> bool:
    """On duty now: active, with a role, and their toggle on."""
    if user is None or not getattr(user, "is_active", False) or user.pk is None:
        return False
    return on_duty().filter(pk=user.pk).exists()


def is_staff_member(user: Any) -> bool:
    """Active with a role: someone who may own a promise."""
    if user is None or not getattr(user, "is_active", False) or user.pk is None:
        return False
    return staff().filter(pk=user.pk).exists()


def _take_turn(user_id: int, now: datetime) -> None:
    """Count a chat or promise given to `user_id` as their turn (the round robin moves past them)."""
    StaffProfile.objects.filter(user_id=user_id).update(last_routed_at=now)


def _next_in_turn(candidates: QuerySet[User], *, now: datetime, exclude: Collection[int]) -> User | None:
    """The candidate on duty routed to least recently; their turn is taken (last_routed_at = now).

    The chosen profile row is locked (SKIP LOCKED: a concurrent hand-off takes the next person
    instead of waiting), and stays locked until the caller's transaction ends.
    """
    with transaction.atomic():
        profile = (
            StaffProfile.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(user__in=candidates.values("pk"), on_duty=True)
            .exclude(user_id__in=list(exclude))
            .order_by(F("last_routed_at").asc(nulls_first=True), "user_id")
            .select_related("user")
            .first()
        )
        if profile is None:
            return None
        profile.last_routed_at = now
        profile.save(update_fields=["last_routed_at"])
        return profile.user


def _active_owner(lead: Lead | None, exclude: Collection[int]) -> User | None:
    if lead is None or lead.owner_id is None or lead.owner_id in exclude:
        return None
    owner = lead.owner
    return owner if is_staff_member(owner) else None


def route(lead: Lead | None, *, now: datetime, exclude: Collection[int] = frozenset()) -> User | None:
    """Who takes this chat now: the owner if on duty, else the next salesperson (then manager) on
    duty; None when nobody is on duty. The chosen person's turn is taken."""
    owner = _active_owner(lead, exclude)
    if owner is not None and is_on_duty(owner):
        _take_turn(owner.pk, now)
        return owner
    return _next_in_turn(salespeople(), now=now, exclude=exclude) or _next_in_turn(
        managers(), now=now, exclude=exclude
    )


def promise_owner(
    lead: Lead | None,
    *,
    now: datetime,
    fallback: User | None = None,
    exclude: Collection[int] = frozenset(),
) -> User:
    """An owner for a promise (callback, follow-up): never nobody while any manager exists.

    `exclude`: people who must not get it (e.g. a user who is leaving). Raises ValidationError only
    when there is no active manager at all."""
    owner = _active_owner(lead, exclude)
    if owner is not None:
        return owner
    user = route(lead, now=now, exclude=exclude)
    if user is not None:
        return user
    if fallback is not None and fallback.pk not in exclude and fallback.is_active:
        return fallback  # chosen by a manager (a chat site's hand-off person): a role is not required
    least_busy = (
        User.objects.filter(pk__in=managers().exclude(pk__in=list(exclude)).values("pk"))
        .annotate(open_follow_ups=Count("follow_ups", filter=Q(follow_ups__done_at__isnull=True)))
        .order_by("open_follow_ups", "pk")
        .first()
    )
    if least_busy is None:
        raise ValidationError("Nobody can own this: add a manager first.")
    return least_busy
