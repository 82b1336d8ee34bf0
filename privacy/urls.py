"""The privacy pages, mounted at /privacy/."""

from __future__ import annotations

from django.urls import URLPattern, path

from privacy import views

app_name = "privacy"
urlpatterns: list[URLPattern] = [
    path("", views.index, name="index"),
    path("leads/<int:lead_id>/export/", views.export, name="export"),
    path("leads/<int:lead_id>/erase/", views.erase, name="erase"),
    path("leads/<int:lead_id>/consents/", views.consents, name="consents"),
    path("requests/", views.requests_list, name="requests"),
    path("requests/<int:pk>/decline/", views.decline, name="decline"),
    path("retention/", views.retention, name="retention"),
]
