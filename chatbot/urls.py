"""Staff chat pages (live inbox, agent panel, reports) and the demo website, under /chat/."""

from __future__ import annotations

from django.urls import URLPattern, path

from chatbot import views

app_name = "chatbot"
urlpatterns: list[URLPattern] = [
    path("", views.inbox, name="inbox"),
    path("leads/<int:lead_id>/panel/", views.agent_panel, name="agent_panel"),
    path("leads/<int:lead_id>/merge-duplicate/", views.merge_duplicate, name="merge_duplicate"),
    path("conversations/<int:conversation_id>/take-over/", views.take_over, name="take_over"),
    path("conversations/<int:conversation_id>/reply/", views.agent_reply, name="agent_reply"),
    path("conversations/<int:conversation_id>/notes/", views.add_note, name="add_note"),
    path("conversations/<int:conversation_id>/messages/", views.agent_messages, name="agent_messages"),
    path("reports/", views.reports, name="reports"),
    path("unanswered/", views.unanswered, name="unanswered"),
    path("sites/<int:site_id>/unanswered/", views.unanswered, name="unanswered_site"),
    path(
        "sites/<int:site_id>/unanswered/<int:message_id>/variant/",
        views.unanswered_variant,
        name="unanswered_variant",
    ),
    path(
        "sites/<int:site_id>/unanswered/<int:message_id>/entry/",
        views.unanswered_entry,
        name="unanswered_entry",
    ),
    path(
        "sites/<int:site_id>/unanswered/<int:message_id>/dismiss/",
        views.unanswered_dismiss,
        name="unanswered_dismiss",
    ),
    path("sites/<int:site_id>/faq-threshold/", views.faq_threshold, name="faq_threshold"),
    path("waiting/", views.waiting, name="waiting"),
    path("alerts/preferences/", views.alert_preferences, name="alert_preferences"),
]
