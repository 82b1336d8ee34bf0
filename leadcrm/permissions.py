"""What a Salesperson or a Manager may see and do.

The rule (documented in the README):
- A **Manager** sees and changes every lead, configures scoring and chat in the admin, and reads
  reports.
- A **Salesperson** sees the leads they own plus unassigned leads (which they may claim). They can
  log interactions and outcomes and manage follow-ups on those leads only. Other salespeople's
  leads are invisible to them: a direct link answers 404, not 403, so ids do not leak.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import BasePermission

if TYPE_CHECKING:  # models imports this module for the role checks
    from leadcrm.models import Lead

MANAGER_GROUP = "Manager"
SALESPERSON_GROUP = "Salesperson"

MANAGER_APPS = (
    "leadcrm",
    "scoring",
    "ml",
    "chatbot",
    "auth",
    "accounts",
    "axes",
    "privacy",
    "dataio",
    "tracking",
    "outreach",
    "webhooks",
)
SALESPERSON_PERMS = (
    "leadcrm.view_lead",
    "leadcrm.change_lead",
    "leadcrm.add_lead",
    "leadcrm.view_interaction",
    "leadcrm.add_interaction",
    "leadcrm.view_followup",
    "leadcrm.add_followup",
    "leadcrm.change_followup",
    "leadcrm.view_segment",
)


def is_manager(user: Any) -> bool:
    """Managers (and superusers) see every lead, configure scoring and chat, and read reports."""
    if not user.is_authenticated:
        return False
    return bool(user.is_superuser) or MANAGER_GROUP in _group_names(user)


def is_salesperson(user: Any) -> bool:
    return bool(user.is_authenticated) and SALESPERSON_GROUP in _group_names(user)


def _group_names(user: Any) -> frozenset[str]:
    # Cached on the user object: role checks run several times per request.
    cached = getattr(user, "_leadcrm_groups", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._leadcrm_groups = cached
    return cached


ViewFunc = Callable[..., HttpResponse]


def manager_required(view: ViewFunc) -> ViewFunc:
    """Every manager page of every app: log in first (redirect), then 403 for anyone not a manager."""

    @login_required
    @wraps(view)
    def check(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_manager(request.user):
            raise PermissionDenied("This page is for managers.")
        return view(request, *args, **kwargs)

    return check


def grant_role_permissions(sender: Any = None, **kwargs: Any) -> None:
    """Give the two role groups their model permissions (idempotent; runs after migrate)."""
    managers, _ = Group.objects.get_or_create(name=MANAGER_GROUP)
    sales, _ = Group.objects.get_or_create(name=SALESPERSON_GROUP)
    managers.permissions.add(*Permission.objects.filter(content_type__app_label__in=MANAGER_APPS))
    sales_perms = Permission.objects.none()
    for dotted in SALESPERSON_PERMS:
        app_label, codename = dotted.split(".")
        sales_perms |= Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    sales.permissions.add(*sales_perms)


def can_see_lead(user: Any, lead: Lead) -> bool:
    if is_manager(user):
        return True
    return is_salesperson(user) and lead.owner_id in (None, user.pk)


def can_change_lead(user: Any, lead: Lead) -> bool:
    """Salespeople change only leads they own (claim an unassigned one first)."""
    if is_manager(user):
        return True
    return is_salesperson(user) and lead.owner_id == user.pk


class IsStaffRole(BasePermission):
    """API access for users with a CRM role (Manager or Salesperson)."""

    message = "Your account has no CRM role (Manager or Salesperson)."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (is_manager(user) or is_salesperson(user)))
