from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate, pre_delete


class LeadcrmConfig(AppConfig):
    name = "leadcrm"
    verbose_name = "CRM"

    def ready(self) -> None:
        from leadcrm.permissions import grant_role_permissions

        # Permissions exist only after every app migrated, so roles get theirs afterwards.
        post_migrate.connect(grant_role_permissions, dispatch_uid="leadcrm_grant_role_permissions")
        from leadcrm.services import hand_on_before_delete

        # A user who is deleted hands their open follow-ups on first (no promise without an owner).
        pre_delete.connect(
            hand_on_before_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="leadcrm_hand_on_follow_ups"
        )
