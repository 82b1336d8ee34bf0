"""HTML views of the CRM: thin, they call selectors and services and render templates."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from leadcrm import selectors


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Landing page after login."""
    return render(request, "leadcrm/home.html", {"summary": selectors.home_summary(user=request.user)})


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers: the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
