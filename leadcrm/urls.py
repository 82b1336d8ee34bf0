"""URLs of the outreacher pages (queue, lead context, follow-ups, reports), mounted at /crm/."""

from __future__ import annotations

from django.urls import URLPattern, path

from leadcrm import views

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
    path("reports/", views.manager_reports, name="reports"),
]
