from __future__ import annotations

from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Website tracking and event ingestion"

    def ready(self) -> None:
        from chatbot.signals import visitor_identified
        from tracking.services import on_visitor_identified

        # A chat conversation that got its lead links the visitor's earlier page views to it.
        visitor_identified.connect(on_visitor_identified, dispatch_uid="tracking.visitor_identified")
