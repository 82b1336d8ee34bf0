from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class LeadcrmConfig(AppConfig):
    name = "leadcrm"
    verbose_name = "CRM"

    def ready(self) -> None:
        from leadcrm.permissions import grant_role_permissions

        # Permissions exist only after every app migrated, so roles get theirs afterwards.
        post_migrate.connect(grant_role_permissions, dispatch_uid="leadcrm_grant_role_permissions")
