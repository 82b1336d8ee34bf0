"""Follow-up sequence pages (/sequences/): managers define them; the lead panel enrols and stops."""

from __future__ import annotations

from django.urls import URLPattern, path

from sequences import views

app_name = "sequences"
urlpatterns: list[URLPattern] = [
    path("", views.index, name="index"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/steps/", views.add_step, name="add_step"),
    path("<int:pk>/enrol-segment/", views.enrol_segment, name="enrol_segment"),
    path("steps/<int:pk>/", views.edit_step, name="edit_step"),
    path("steps/<int:pk>/delete/", views.delete_step, name="delete_step"),
    path("leads/<int:lead_id>/enrol/", views.enrol_lead, name="enrol_lead"),
    path("enrolments/<int:pk>/stop/", views.stop, name="stop"),
]
