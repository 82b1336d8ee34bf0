"""What a Salesperson or a Manager may see and do.

The rule (documented in the README):
- A **Manager** sees and changes every lead, configures scoring and chat in the admin, and reads
  reports.
- A **Salesperson** sees the leads they own plus unassigned leads (which they may claim). They can
  log interactions and outcomes and manage follow-ups on those leads only. Other salespeople's
  leads are invisible to them: a direct link answers 404, not 403, so ids do not leak.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from rest_framework.permissions import BasePermission

from leadcrm.models import MANAGER_GROUP, SALESPERSON_GROUP, Lead, is_manager, is_salesperson

MANAGER_APPS = ("leadcrm", "scoring", "ml", "chatbot", "auth", "authtoken")
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
