from __future__ import annotations

from django.apps import AppConfig


class SequencesConfig(AppConfig):
    name = "sequences"
    verbose_name = "Follow-up sequences"

    def ready(self) -> None:
        from sequences import receivers  # noqa: F401  (connects the chat's callback trigger)
