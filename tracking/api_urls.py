"""Tracking URLs under /api/v1/: the snippet's public endpoints and the batch events API."""

from __future__ import annotations

from django.urls import path

from tracking import api

app_name = "tracking"

urlpatterns = [
    path("track/sites/<str:key>/config", api.TrackingConfigView.as_view(), name="config"),
    path("track/sites/<str:key>/events", api.TrackEventsView.as_view(), name="events"),
    path("track/sites/<str:key>/identify", api.TrackingIdentifyView.as_view(), name="identify"),
    path("events/batch", api.BatchEventsView.as_view(), name="events-batch"),
]
