from __future__ import annotations

from django.urls import path

from scoring.ml import views

app_name = "ml"
urlpatterns = [
    path("", views.accuracy, name="accuracy"),
    path("fairness/", views.fairness, name="fairness"),
    path("retrain/", views.retrain, name="retrain"),
    path("runs/<int:pk>/", views.run_progress, name="run_progress"),
    path("blend/", views.blend, name="blend"),
]
