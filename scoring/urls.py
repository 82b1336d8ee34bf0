from __future__ import annotations

from django.urls import path

from scoring import views

app_name = "scoring"
urlpatterns = [
    path("recompute/progress/", views.recompute_progress, name="recompute_progress"),
    path("recompute/", views.recompute_now, name="recompute_now"),
    path("rules/<int:rule_id>/matches/", views.rule_matches, name="rule_matches"),
    path("rules/<int:rule_id>/preview/", views.rule_preview, name="rule_preview"),
]
