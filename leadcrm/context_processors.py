from __future__ import annotations

from functools import cache
from typing import Any

from django.http import HttpRequest

from leadcrm.permissions import is_manager, is_salesperson


def roles(request: HttpRequest) -> dict[str, Any]:
    """Expose `is_manager` to every template (navigation shows reports to managers only), and
    `is_staff_member` (salesperson or manager: the page holds the staff alerts socket)."""
    user = getattr(request, "user", None)
    manager = bool(user and is_manager(user))
    staff = manager or bool(user and is_salesperson(user))
    # `duty`: the nav's on-duty toggle (leadcrm.promise_views); a callable, so only a page that
    # shows the toggle reads it (one query), and None (no toggle) for users without a role.
    return {
        "is_manager": manager,
        "is_staff_member": staff,
        "duty": cache(lambda: _duty(user) if staff else None),
    }


def _duty(user: Any) -> bool:
    # The user's own profile row (cached on the user: the alerts menu reads the same row); the role
    # and active checks of leadcrm.routing.is_on_duty are already made for `staff`.
    from leadcrm.models import StaffProfile

    try:
        return bool(user.staff_profile.on_duty)
    except StaffProfile.DoesNotExist:
        return False
