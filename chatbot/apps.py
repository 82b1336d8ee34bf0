from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class ChatbotConfig(AppConfig):
    name = "chatbot"
    verbose_name = "Website chat"

    def ready(self) -> None:
        from chatbot.models import FaqEntry

        def refit(sender: Any, instance: FaqEntry, **kwargs: Any) -> None:
            # This process refits at once; other processes notice within FAQ_RECHECK_SECONDS.
            from chatbot.services import forget_faq_index

            forget_faq_index(instance.site_id)

        post_save.connect(refit, sender=FaqEntry, dispatch_uid="chatbot-faq-refit-save")
        post_delete.connect(refit, sender=FaqEntry, dispatch_uid="chatbot-faq-refit-delete")
