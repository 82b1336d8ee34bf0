"""Demo set-up of the apps on top of the CRM data: scoring rules and first scores, the model, the chat site."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from django.core.exceptions import ValidationError
from django.urls import reverse

from demo.site import install_demo_site
from scoring import defaults
from scoring import services as scoring
from scoring.ml import services as ml
from scoring.ml.models import ModelVersion
from webhooks import services as webhooks
from webhooks.models import Event, Webhook

DEMO_WEBHOOK_NAME = "Demo receiver"


def seed_apps(*, now: datetime, site_origins: Sequence[str] = ()) -> Iterator[str]:
    """Run each app's idempotent demo set-up and say what it did."""
    added = defaults.install_default_rules()
    yield f"Scoring: default rules and grade bands in place ({added} rules added)."
    current = ModelVersion.objects.filter(is_promoted=True).first()
    if current is not None:
        yield f"Predictive model: version {current.pk} already in use (retrain from the admin)."
    else:
        outcome = ml.train_and_promote(now=now, rescore=False)
        yield f"Predictive model: {outcome.message}"
    run = scoring.recompute_all(reason="Demo data seeded", now=now)
    yield f"Scoring: {run.done_leads} leads scored."
    site = install_demo_site(origins=site_origins)
    yield f"Chat: demo site “{site.name}” (key {site.public_key}) with {site.faq_entries.count()} FAQ entries."
    yield _demo_webhook(site_origins[0] if site_origins else "http://127.0.0.1:8000")


def _demo_webhook(origin: str) -> str:
    """A webhook to the demo's own receiver page, with every event (loopback is allowed with DEBUG)."""
    url = origin.rstrip("/") + reverse("demo:webhook_receiver")
    if Webhook.objects.filter(name=DEMO_WEBHOOK_NAME).exists():
        return f"Webhooks: “{DEMO_WEBHOOK_NAME}” already registered."
    try:
        webhooks.create_webhook(name=DEMO_WEBHOOK_NAME, url=url, events=Event.values, by=None)
    except ValidationError as exc:
        return f"Webhooks: demo receiver not registered ({' '.join(exc.messages)})"
    return f"Webhooks: “{DEMO_WEBHOOK_NAME}” sends every event to {url} (see what arrives there)."
