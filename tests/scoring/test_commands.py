"""`manage.py recompute`: every lead rescored in this process, or queued for a worker."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from leadcrm.models import Lead
from scoring.models import RecomputeRun
from tests.factories import make_interaction, make_lead
from tests.scoring.helpers import make_rule

pytestmark = pytest.mark.django_db


def test_recompute_scores_every_lead_and_reports() -> None:
    make_rule(points=7)  # per page view
    leads = [make_lead() for _ in range(3)]
    for lead in leads:
        make_interaction(lead, "page_view")
    out = StringIO()
    call_command("recompute", stdout=out)
    assert "3 leads" in out.getvalue()
    assert set(Lead.objects.values_list("rule_score", flat=True)) == {7.0}
    assert RecomputeRun.objects.get().status == "done"


def test_recompute_queue_only_queues(django_capture_on_commit_callbacks) -> None:
    out = StringIO()
    call_command("recompute", "--queue", stdout=out)
    assert "queued" in out.getvalue()
