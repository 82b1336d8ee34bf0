"""The managers' webhook pages, mounted at /webhooks/."""

from __future__ import annotations

from django.urls import URLPattern, path

from webhooks import views

app_name = "webhooks"
urlpatterns: list[URLPattern] = [
    path("", views.index, name="index"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/test/", views.send_test, name="send_test"),
    path("deliveries/<int:pk>/replay/", views.replay, name="replay"),
]
