"""A promoted model that cannot be loaded or fails to predict never stops scoring, and says so."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse

from leadcrm.models import Lead
from scoring import services as scoring_services
from scoring.ml import services
from scoring.ml.models import ModelVersion
from tests.factories import make_interaction, make_lead, make_manager
from tests.scoring.helpers import make_rule

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_process_cache():
    services._cache.update(key=None, scorer=None)
    services._reported.clear()
    yield
    services._cache.update(key=None, scorer=None)
    services._reported.clear()


@pytest.mark.parametrize("artifact", [b"", b"not a pickle at all", b"\x80\x04\x95garbage"])
def test_a_corrupt_model_leaves_rule_scores_working_and_says_why(promoted, artifact, caplog) -> None:
    ModelVersion.objects.filter(pk=promoted.pk).update(artifact=artifact)
    make_rule(points=5)
    lead = make_lead()
    make_interaction(lead, "page_view")

    with caplog.at_level(logging.ERROR, logger="scoring.ml.services"):
        scoring_services.rescore_leads([lead.pk])
        scoring_services.rescore_leads([lead.pk])  # a second batch in the same process logs nothing new

    lead.refresh_from_db()
    assert lead.rule_score == 5  # rule scoring goes on
    assert lead.ml_probability is None
    assert lead.priority == 5  # the queue falls back to the rule score
    reason = lead.ml_factors[0]["unavailable"]
    assert reason.startswith(f"Predictive score unavailable: model v{promoted.pk} could not be loaded")
    version = ModelVersion.objects.get(pk=promoted.pk)
    assert version.status == "failed"
    assert "could not be loaded" in version.failure
    assert version.is_promoted  # nothing else was silently put in its place
    assert len([r for r in caplog.records if r.name == "scoring.ml.services"]) == 1


def test_a_model_that_fails_to_predict_is_marked_failed(promoted, monkeypatch) -> None:
    def broken(self, X):
        raise ValueError("X has 12 features, but the model expects 14")

    monkeypatch.setattr(type(services.load_promoted()[1]), "explain", broken)
    lead = make_lead()
    scoring_services.rescore_leads([lead.pk])
    lead.refresh_from_db()
    assert lead.ml_probability is None
    assert "failed to predict (ValueError: X has 12 features" in lead.ml_factors[0]["unavailable"]
    assert ModelVersion.objects.get(pk=promoted.pk).status == "failed"


def test_the_accuracy_page_the_panel_and_the_admin_say_so(promoted, client) -> None:
    ModelVersion.objects.filter(pk=promoted.pk).update(artifact=b"broken")
    lead = make_lead()
    scoring_services.rescore_leads([lead.pk])
    manager = make_manager()
    manager.is_staff = True
    manager.save()
    client.force_login(manager)

    page = client.get(reverse("ml:accuracy")).content.decode()
    assert f"Model #{promoted.pk} is unavailable" in page
    panel = client.get(reverse("leadcrm:lead", args=[lead.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert f"Predictive score unavailable: model v{promoted.pk} could not be loaded" in panel
    admin_page = client.get(reverse("admin:ml_modelversion_change", args=[promoted.pk])).content.decode()
    assert "could not be loaded" in admin_page


def test_a_new_model_is_promoted_over_an_unavailable_one(promoted, now) -> None:
    ModelVersion.objects.filter(pk=promoted.pk).update(artifact=b"broken")
    Lead.objects.update(ml_probability=None)
    outcome = services.train_and_promote(now=now, rescore=False)
    assert outcome.version is not None
    assert outcome.version.is_promoted
    assert "unavailable" in outcome.message
    lead = make_lead()
    scoring_services.rescore_leads([lead.pk])
    lead.refresh_from_db()
    assert lead.ml_probability is not None
