"""The demo website, mounted at /chat/demo/ (the URL the demo has always had)."""

from __future__ import annotations

from django.urls import URLPattern, path

from demo import views

app_name = "demo"
urlpatterns: list[URLPattern] = [
    path("site/", views.demo_site, name="site"),
    path("site/<slug:page>/", views.demo_site, name="site_page"),
    path("webhook-receiver/", views.webhook_receiver, name="webhook_receiver"),
]
