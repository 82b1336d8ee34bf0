"""The manager's accuracy page: who may see it, what it shows, retrain with progress, blend weight."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from bench.synthetic import make_history
from leadcrm.models import Lead
from scoring.ml.models import MlSettings, TrainingRun
from scoring.models import ScoreSnapshot
from scoring.services import rescore_leads

pytestmark = pytest.mark.django_db


def test_salespeople_and_visitors_cannot_see_the_page(client, salesperson):
    url = reverse("ml:accuracy")
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(salesperson)
    assert client.get(url).status_code == 403
    assert client.post(reverse("ml:retrain")).status_code == 403
    assert client.post(reverse("ml:blend"), {"weight": "1"}).status_code == 403
    assert not TrainingRun.objects.exists()


def test_cold_start_is_said_plainly(client, manager):
    client.force_login(manager)
    page = client.get(reverse("ml:accuracy")).content.decode()
    assert "No model yet." in page
    assert "rule score alone" in page
    assert "No lead has closed since it was first predicted" in page


def test_live_accuracy_counts_only_predictions_made_before_the_outcome(client, manager, promoted, now):
    open_ids = list(Lead.objects.open().values_list("id", flat=True))
    rescore_leads(open_ids, now=now)  # the scoring path: rule score, prediction, score history
    later = now + timezone.timedelta(days=1)
    # Half of the predicted leads close afterwards: those count. Mark them by their prediction.
    snaps = dict(
        ScoreSnapshot.objects.filter(lead_id__in=open_ids, ml_probability__isnull=False).values_list(
            "lead_id", "ml_probability"
        )
    )
    assert len(snaps) == len(open_ids)
    ranked = sorted(snaps, key=snaps.get)
    lost, won = ranked[: len(ranked) // 4], ranked[-len(ranked) // 4 :]
    Lead.objects.filter(pk__in=won).update(status="won", closed_at=later)
    Lead.objects.filter(pk__in=lost).update(status="lost", closed_at=later, lost_reason="price")
    # A lead predicted only after it closed must not count.
    ScoreSnapshot.objects.create(
        lead_id=won[0], taken_at=later + timezone.timedelta(hours=1), rule_score=0, ml_probability=0.0
    )
    client.force_login(manager)
    response = client.get(reverse("ml:accuracy"))
    report = response.context["report"]
    assert report.outcomes == len(won) + len(lost)
    assert report.roc_auc == 1.0  # ranked by the model itself, so perfectly ordered
    assert sum(b["n"] for b in report.calibration) == report.outcomes
    assert report.deciles[0]["conversion"] >= report.deciles[-1]["conversion"]
    page = response.content.decode()
    assert "<svg" in page
    assert "Calibration" in page
    assert "time-split ROC-AUC" in page
    assert "Disparity ratio" in page


def test_fairness_partial_rejects_unknown_attributes(client, manager):
    client.force_login(manager)
    assert client.get(reverse("ml:fairness"), {"attribute": "salary; drop"}).status_code == 400
    response = client.get(reverse("ml:fairness"), {"attribute": "gender"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "nothing to compare" in response.content.decode()


def test_retrain_button_runs_and_reports_progress(client, manager, now, django_capture_on_commit_callbacks):
    make_history(40, now=now, seed=5)  # too few outcomes: the run ends in cold start
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(reverse("ml:retrain"), HTTP_HX_REQUEST="true")
    assert len(callbacks) == 1
    assert "Training run" in response.content.decode()
    assert response.status_code == 200
    run = TrainingRun.objects.get()
    assert run.state == "cold_start"
    assert "Not enough outcomes" in run.message
    progress = client.get(reverse("ml:run_progress", args=[run.pk])).content.decode()
    assert "Not enough outcomes yet" in progress
    assert "every 1s" not in progress


def test_manager_sets_the_blend_weight(client, manager):
    client.force_login(manager)
    client.post(reverse("ml:blend"), {"weight": "0.8"})
    assert MlSettings.load().blend_weight == 0.8
    response = client.post(reverse("ml:blend"), {"weight": "3"}, follow=True)
    assert "between 0 and 1" in response.content.decode()
    assert MlSettings.load().blend_weight == 0.8


def test_admin_lists_versions_with_the_retrain_button(client, manager, promoted):
    client.force_login(manager)
    manager.is_staff = manager.is_superuser = True
    manager.save()
    page = client.get(reverse("admin:ml_modelversion_changelist")).content.decode()
    assert "Retrain now" in page
    assert "Roll back" in page
    client.post(reverse("admin:ml_modelversion_retrain"))
    assert TrainingRun.objects.exists()
