"""A rule save tells the truth about the recompute it caused (issue 16, item 7): with an eager
worker (the demo) the recompute has finished by the time the page answers, so "being recomputed"
with no progress anywhere was wrong; it now says what happened, with figures."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from leadcrm.models import Lead
from scoring.admin import recompute_message
from scoring.models import RecomputeRun
from tests.factories import make_lead, make_manager
from tests.scoring.test_admin import rule_form


@pytest.mark.django_db(
    transaction=True
)  # real commits: the recompute runs inside the request, as in the demo
def test_saving_a_rule_with_an_eager_worker_says_the_scores_were_recomputed() -> None:
    lead = make_lead(job_title="Sales Director")
    make_lead(job_title="Baker")
    client = Client()
    client.force_login(make_manager("chief", is_staff=True))

    response = client.post(reverse("admin:scoring_rule_add"), rule_form(), follow=True)

    said = [str(m) for m in response.context["messages"]]
    assert Lead.objects.get(pk=lead.pk).rule_score == 10
    assert RecomputeRun.objects.get().status == "done"
    assert any(re.fullmatch(r"Scores recomputed: 2 leads, \d+ changed\.", m) for m in said), said
    assert not any("being recomputed" in m for m in said), said


@pytest.mark.django_db
def test_the_message_follows_the_run() -> None:
    assert recompute_message(None).startswith("Saved. Nothing changed")
    run = RecomputeRun.objects.create(reason="Rule changed")  # queued: a worker will take it
    assert recompute_message(None).startswith("Scores are being recomputed (0% done)")
    run.status = RecomputeRun.Status.DONE
    run.save()
    assert recompute_message(run).startswith("Saved. Nothing changed")  # the same run as before the save
