from __future__ import annotations

from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Website tracking and event ingestion"

    def ready(self) -> None:
        from chatbot.signals import visitor_identified
        from leadcrm.signals import leads_erased
        from privacy.signals import person_data_requested
        from tracking.services import on_leads_erased, on_person_data_requested, on_visitor_identified

        # A chat conversation that got its lead links the visitor's earlier page views to it.
        visitor_identified.connect(on_visitor_identified, dispatch_uid="tracking.visitor_identified")
        # Erasing a lead deletes its visitor links and their waiting events, in the same transaction.
        leads_erased.connect(on_leads_erased, dispatch_uid="tracking.leads_erased")
        # A person's data export includes their linked visitor ids and waiting events.
        person_data_requested.connect(on_person_data_requested, dispatch_uid="tracking.person_data")
