"""URLs of the outreacher pages (queue, lead context, follow-ups, reports), mounted at /crm/."""

from __future__ import annotations

from django.urls import URLPattern, path

from leadcrm import playbook_views, promise_views, views

app_name = "leadcrm"
urlpatterns: list[URLPattern] = [
    path("", views.queue, name="queue"),
    path("leads/<int:lead_id>/", views.lead_detail, name="lead"),
    path("leads/<int:lead_id>/timeline/", views.lead_timeline, name="lead_timeline"),
    path("leads/<int:lead_id>/claim/", views.claim, name="claim"),
    path("leads/<int:lead_id>/outcome/", views.log_outcome_view, name="log_outcome"),
    path("leads/<int:lead_id>/follow-ups/", views.add_follow_up, name="add_follow_up"),
    path("follow-ups/", views.follow_ups, name="follow_ups"),
    path("follow-ups/due/", views.due_badge, name="due_badge"),
    path("follow-ups/<int:pk>/done/", views.complete_follow_up, name="complete_follow_up"),
    path("follow-ups/attention/", promise_views.follow_ups_attention, name="follow_ups_attention"),
    path("follow-ups/<int:pk>/reassign/", promise_views.reassign_follow_up, name="reassign_follow_up"),
    path("on-duty/", promise_views.on_duty, name="on_duty"),
    path("reports/", views.manager_reports, name="reports"),
    path("leads/<int:lead_id>/next/", playbook_views.next_lead, name="next_lead"),
    path("playbook/", playbook_views.playbook_page, name="playbook"),
    path("playbook/start/", playbook_views.playbook_start, name="playbook_start"),
    path("playbook/rules/", playbook_views.playbook_rule_save, name="playbook_rule_add"),
    path("playbook/rules/<int:rule_id>/", playbook_views.playbook_rule_save, name="playbook_rule"),
    path(
        "playbook/rules/<int:rule_id>/delete/",
        playbook_views.playbook_rule_delete,
        name="playbook_rule_delete",
    ),
    path("playbook/rules/<int:rule_id>/move/", playbook_views.playbook_rule_move, name="playbook_rule_move"),
    path("canned-replies/", playbook_views.canned_replies_page, name="canned_replies"),
    path("canned-replies/new/", playbook_views.canned_reply_save, name="canned_reply_add"),
    path("canned-replies/<int:reply_id>/", playbook_views.canned_reply_save, name="canned_reply"),
    path(
        "canned-replies/<int:reply_id>/delete/",
        playbook_views.canned_reply_delete,
        name="canned_reply_delete",
    ),
]
