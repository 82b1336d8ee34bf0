from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Outgoing webhooks"

    def ready(self) -> None:
        from audit.triggers import Tracked, triggers_for
        from webhooks import receivers
        from webhooks.models import Webhook

        receivers.connect()
        # The audit trail tracks webhook changes (who added, changed or disabled a URL); the secret
        # shows as "(hidden)". Registered here because the audit app sits below this one.
        for trigger in triggers_for(Tracked(Webhook, redact=("secret",))):
            trigger.register(Webhook)  # type: ignore[arg-type]  # pgtrigger types classes as instances
