"""Demo set-up of the apps on top of the CRM data: scoring rules and first scores, the model, the chat site."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from django.core.exceptions import ValidationError
from django.urls import reverse

from demo.chat_history import seed_chat_history
from demo.site import install_demo_site
from leadcrm import playbook
from leadcrm.models import CannedReply, PlaybookKind
from scoring import defaults
from scoring import services as scoring
from scoring.ml import services as ml
from scoring.ml.models import ModelVersion
from webhooks import services as webhooks
from webhooks.models import Event, Webhook

DEMO_WEBHOOK_NAME = "Demo receiver"


def seed_apps(
    *, now: datetime, site_origins: Sequence[str] = (), playbook_kind: str = "shop"
) -> Iterator[str]:
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
    yield seed_chat_history(site, now=now)
    yield _demo_webhook(site_origins[0] if site_origins else "http://127.0.0.1:8000")
    yield _demo_playbook(playbook_kind)


DEMO_CANNED_REPLIES = (
    ("Hello", "Hi {first_name}, this is {agent_name} from the bakery. How can I help?"),
    ("Tasting", "Hi {first_name}, we'd love to invite you to a free cake tasting. Which day suits you?"),
    ("Catering quote", "Thanks, {first_name}! For a catering quote, how many guests and on which date?"),
)


def _demo_playbook(kind: str) -> str:
    """The bakery's playbook (a local shop/café one) and a few canned replies, once."""
    current = playbook.current()
    if current is None:
        playbook.apply_defaults(kind=kind)
        said = f"Playbook: started from the “{PlaybookKind(kind).label}” defaults."
    else:
        said = f"Playbook: “{current.get_kind_display()}” already in place."
    if not CannedReply.objects.exists():
        CannedReply.objects.bulk_create(CannedReply(title=t, text=x) for t, x in DEMO_CANNED_REPLIES)
        said += f" {len(DEMO_CANNED_REPLIES)} canned replies added."
    return said


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
