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
            # This process refits at once; other processes within chatbot.faq.FAQ_RECHECK_SECONDS.
            from chatbot.faq import forget_faq_index, request_recalibration

            forget_faq_index(instance.site_id)
            request_recalibration(instance.site_id)  # the threshold is chosen on the FAQ itself

        # weak=False: nothing else holds this local function; a weak receiver was garbage-collected
        # soon after start-up, and saved entries were only noticed at the next recheck.
        post_save.connect(refit, sender=FaqEntry, weak=False, dispatch_uid="chatbot-faq-refit-save")
        post_delete.connect(refit, sender=FaqEntry, weak=False, dispatch_uid="chatbot-faq-refit-delete")

        from chatbot.report_figures import answer_report
        from leadcrm.signals import report_chat_responses

        report_chat_responses.connect(answer_report, dispatch_uid="chatbot-report-chat-responses")
