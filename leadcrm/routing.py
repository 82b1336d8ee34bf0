"""Who takes a live chat or a promise: one routing rule for chats, callbacks and follow-ups.

1. The lead's owner, if they are on duty.
2. Otherwise round robin among the salespeople on duty (the one routed to least recently), and
   among the managers on duty when no salesperson is.
3. Nobody on duty: a chat waits for anyone (`route` returns None); a promise still needs an owner
   (`promise_owner`): the lead's owner, else the given fallback (e.g. the chat site's hand-off
   person), else the manager with the fewest open follow-ups.
"""

from __future__ import annotations

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


def managers() -> QuerySet[User]:
    return User.objects.filter(
        Q(groups__name=MANAGER_GROUP) | Q(is_superuser=True), is_active=True
    ).distinct()


def on_duty() -> QuerySet[User]:
    return staff().filter(staff_profile__on_duty=True)


def anyone_on_duty() -> bool:
    return on_duty().exists()


def is_on_duty(user: Any) -> bool:
    if user is None or not user.is_active:
        return False
    return StaffProfile.objects.filter(user=user, on_duty=True).exists()


def _next_in_turn(candidates: QuerySet[User], *, now: datetime, exclude: set[int]) -> User | None:
    """The candidate routed to least recently; their turn is taken (last_routed_at = now)."""
    with transaction.atomic():
        profile = (
            StaffProfile.objects.select_for_update(skip_locked=True)
            .filter(user__in=candidates.values("pk"), on_duty=True)
            .exclude(user_id__in=exclude)
            .order_by(F("last_routed_at").asc(nulls_first=True), "user_id")
            .select_related("user")
            .first()
        )
        if profile is None:
            return None
        profile.last_routed_at = now
        profile.save(update_fields=["last_routed_at"])
        return profile.user


def route(
    lead: Lead | None, *, now: datetime, exclude: set[int] | frozenset[int] = frozenset()
) -> User | None:
    """Who takes this now: the owner if on duty, else the next salesperson (then manager) on duty."""
    exclude = set(exclude)
    owner = lead.owner if lead is not None and lead.owner_id is not None else None
    if owner is not None and owner.pk not in exclude and is_on_duty(owner):
        return owner
    sales = staff().filter(groups__name=SALESPERSON_GROUP)
    return _next_in_turn(sales, now=now, exclude=exclude) or _next_in_turn(
        managers(), now=now, exclude=exclude
    )


def promise_owner(lead: Lead | None, *, now: datetime, fallback: User | None = None) -> User:
    """An owner for a promise (callback, follow-up): never nobody while any manager exists."""
    user = route(lead, now=now)
    if user is not None:
        return user
    if lead is not None and lead.owner_id is not None and lead.owner.is_active:  # type: ignore[union-attr]
        return lead.owner  # type: ignore[return-value]
    if fallback is not None and fallback.is_active:
        return fallback
    least_busy = (
        managers()
        .annotate(open_follow_ups=Count("follow_ups", filter=Q(follow_ups__done_at__isnull=True)))
        .order_by("open_follow_ups", "pk")
        .first()
    )
    if least_busy is None:
        raise ValidationError("Nobody can own this: add a manager first.")
    return least_busy
