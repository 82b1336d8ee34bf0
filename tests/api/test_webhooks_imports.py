"""The managers' API for webhooks (CRUD, secret shown once, deliveries, replay) and import jobs."""

import pytest
from django.core.cache import cache
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from dataio.models import ImportJob, ImportRowResult
from tests.factories import make_manager, make_user
from webhooks.models import Delivery, Webhook

pytestmark = pytest.mark.django_db


def client(user):
    cache.clear()
    c = APIClient()
    c.force_authenticate(user)
    return c


def test_webhooks(monkeypatch):
    from webhooks import guard

    monkeypatch.setattr(guard, "check_url", lambda url: None)
    boss, seller = make_manager(), make_user()
    created = client(boss).post(
        "/api/v1/webhooks/",
        {"name": "Slack", "url": "https://hooks.example/x", "events": ["lead.created"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    hook = Webhook.objects.get()
    assert created.json()["secret"] == hook.secret
    read = client(boss).get(f"/api/v1/webhooks/{hook.pk}/")
    assert hook.secret not in read.content.decode()
    assert (
        client(boss).patch(f"/api/v1/webhooks/{hook.pk}/", {"active": False}, format="json").status_code
        == 200
    )
    assert (
        client(boss).patch(f"/api/v1/webhooks/{hook.pk}/", {"events": ["nope"]}, format="json").status_code
        == 400
    )
    assert (
        client(boss).patch(f"/api/v1/webhooks/{hook.pk}/", {"secret": "x"}, format="json").status_code == 400
    )
    old = hook.secret
    rotated = client(boss).post(f"/api/v1/webhooks/{hook.pk}/rotate-secret/").json()
    hook.refresh_from_db()
    assert rotated["secret"] == hook.secret != old
    assert client(seller).get("/api/v1/webhooks/").status_code == 403
    d = Delivery.objects.create(webhook=hook, event="lead.created", payload={"a": 1})
    rows = client(boss).get("/api/v1/webhook-deliveries/", {"webhook": hook.pk}).json()["results"]
    assert [r["id"] for r in rows] == [d.pk]
    assert client(boss).post(f"/api/v1/webhook-deliveries/{d.pk}/replay/").status_code == 201
    assert client(seller).get("/api/v1/webhook-deliveries/").status_code == 403


def test_imports():
    boss, seller = make_manager(), make_user()
    job = ImportJob.objects.create(
        original_name="leads.csv", file="imports/x.csv", total_rows=2, status="done"
    )
    ImportRowResult.objects.create(job=job, line=2, action="create")
    ImportRowResult.objects.create(job=job, line=3, action="refuse", reason="Enter a valid email address.")
    assert client(boss).get(f"/api/v1/imports/{job.pk}/").json()["status"] == "done"
    rows = client(boss).get(f"/api/v1/imports/{job.pk}/rows/", {"action": "refuse"}).json()["results"]
    assert rows == [{"line": 3, "action": "refuse", "reason": "Enter a valid email address."}]
    assert client(seller).get("/api/v1/imports/").status_code == 403
    assert client(boss).get("/api/v1/imports/x/").status_code == 404


def test_schema_builds_without_warnings():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert "/api/v1/imports/{id}/rows/" in schema["paths"]
    assert "429" in schema["paths"]["/api/v1/webhooks/"]["get"]["responses"]
