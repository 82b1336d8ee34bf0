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
    path("conversations/<int:conversation_id>/messages/", views.agent_messages, name="agent_messages"),
    path("reports/", views.reports, name="reports"),
]
