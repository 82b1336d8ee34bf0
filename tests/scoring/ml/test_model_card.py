"""After *Retrain now* the *Model in use* card names the model the run left in use, without a reload."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from scoring.ml.models import ModelVersion, TrainingRun

pytestmark = pytest.mark.django_db


def test_a_finished_run_swaps_in_the_model_card_naming_the_new_model(
    client, manager, promoted, django_capture_on_commit_callbacks
) -> None:
    client.force_login(manager)
    page = client.get(reverse("ml:accuracy")).content.decode()
    assert f"Model #{promoted.pk}:" in page

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("ml:retrain"), HTTP_HX_REQUEST="true").content.decode()
    run = TrainingRun.objects.get()
    assert run.state not in ("queued", "running"), run.message
    in_use = ModelVersion.objects.get(is_promoted=True)
    assert in_use.pk != promoted.pk  # the retrain promoted a new version (same data: not worse)

    progress = client.get(reverse("ml:run_progress", args=[run.pk])).content.decode()

    card = re.search(r'<div id="model-in-use" hx-swap-oob="true">.*?</div>\s*$', progress, re.S)
    assert card, progress
    assert f"Model #{in_use.pk}:" in card.group(0)
    assert f"Model #{promoted.pk}:" not in card.group(0)


def test_a_running_training_does_not_swap_the_card(client, manager) -> None:
    run = TrainingRun.objects.create()  # queued: its worker has not picked it up yet
    client.force_login(manager)

    progress = client.get(reverse("ml:run_progress", args=[run.pk])).content.decode()

    assert "every 1s" in progress
    assert "model-in-use" not in progress
