"""Public email tracking (/e/o/<token>.gif, /e/c/<token>) and the compose form (/email/leads/<id>/)."""

from __future__ import annotations

from django.urls import URLPattern, path, re_path

from outreach import views

app_name = "outreach"
urlpatterns: list[URLPattern] = [
    re_path(r"^e/o/(?P<token>[^/]+)\.gif$", views.open_pixel, name="open"),
    path("e/c/<str:token>", views.click, name="click"),
    path("email/leads/<int:lead_id>/", views.compose, name="compose"),
]
