"""Import pages and CSV exports, mounted at /import/ ."""

from __future__ import annotations

from django.urls import URLPattern, path

from dataio import views

app_name = "dataio"
urlpatterns: list[URLPattern] = [
    path("", views.upload, name="upload"),
    path("<int:job_id>/mapping/", views.mapping, name="mapping"),
    path("<int:job_id>/", views.job, name="job"),
    path("<int:job_id>/run/", views.run, name="run"),
    path("<int:job_id>/rows.csv", views.error_report, name="error_report"),
    path("export/leads.csv", views.export_queue, name="export_queue"),
    path("export/segments/<int:segment_id>.csv", views.export_segment, name="export_segment"),
]
