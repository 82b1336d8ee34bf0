"""Queueing, coalescing, the sweep after a broker outage, rule changes and their recompute."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from leadcrm.models import Lead
from leadcrm.services import record_interaction
from scoring import services, tasks
from scoring.models import RecomputeRun, Rule, RuleChange
from tests.factories import make_interaction, make_lead, make_manager
from tests.scoring.helpers import make_rule

pytestmark = pytest.mark.django_db


def test_new_interaction_is_scored_once_the_transaction_commits(django_capture_on_commit_callbacks) -> None:
    make_rule(points=5)
    lead = make_lead()
    Lead.objects.filter(pk=lead.pk).update(rescore_requested_at=None)

    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        for _ in range(3):  # a burst for one lead queues a single task
            record_interaction(lead=lead, kind="page_view", occurred_at=timezone.now())

    assert len(callbacks) == 1
    lead.refresh_from_db()
    assert lead.rule_score == 15
    assert lead.rescore_requested_at is None
    assert lead.score_breakdown[0]["reason"] == "Viewed 3 pages"


def test_rescore_task_is_idempotent_and_skips_leads_without_a_request() -> None:
    make_rule(points=5)
    lead = make_lead()
    make_interaction(lead, "page_view")
    Lead.objects.filter(pk=lead.pk).update(rescore_requested_at=None, rule_score=99)

    tasks.rescore_lead(lead.pk)  # nothing requested: a duplicate delivery does nothing
    assert Lead.objects.get(pk=lead.pk).rule_score == 99

    Lead.objects.filter(pk=lead.pk).update(rescore_requested_at=timezone.now())
    tasks.rescore_lead(lead.pk)
    tasks.rescore_lead(lead.pk)
    lead.refresh_from_db()
    assert (lead.rule_score, lead.rescore_requested_at) == (5, None)


def test_sweep_catches_up_requests_whose_task_was_lost() -> None:
    """Broker away: the interactions were committed, the requests set, but no task ever ran."""
    make_rule(points=5)
    stale = [make_lead() for _ in range(3)]
    fresh = make_lead()
    for lead in [*stale, fresh]:
        make_interaction(lead, "page_view")
    long_ago = timezone.now() - timedelta(minutes=5)
    Lead.objects.filter(pk__in=[lead.pk for lead in stale]).update(rescore_requested_at=long_ago)
    Lead.objects.filter(pk=fresh.pk).update(rescore_requested_at=timezone.now())  # its task may still come

    assert tasks.sweep_stale_scores() == 3

    for lead in stale:
        lead.refresh_from_db()
        assert (lead.rule_score, lead.rescore_requested_at) == (5, None)
    fresh.refresh_from_db()
    assert fresh.rule_score == 0
    assert fresh.rescore_requested_at is not None


def test_sweep_restarts_a_full_recompute_whose_task_never_arrived() -> None:
    make_rule(points=5)
    lead = make_lead()
    make_interaction(lead, "page_view")
    run = RecomputeRun.objects.create(reason="lost", created_at=timezone.now() - timedelta(minutes=2))

    tasks.sweep_stale_scores()

    run.refresh_from_db()
    assert run.status == "done"
    assert Lead.objects.get(pk=lead.pk).rule_score == 5


def test_rule_change_is_recorded_and_triggers_a_full_recompute(django_capture_on_commit_callbacks) -> None:
    boss = make_manager()
    lead = make_lead(job_title="Director of Sales")
    with django_capture_on_commit_callbacks(execute=True):
        rule = services.save_rule(
            rule=Rule(
                name="Director",
                category="fit",
                field="job_title",
                operator="contains",
                value="director",
                points=10,
                reason="Director",
            ),
            by=boss,
        )
    assert Lead.objects.get(pk=lead.pk).rule_score == 10

    with django_capture_on_commit_callbacks(execute=True):
        rule.points = 25
        services.save_rule(rule=rule, by=boss)
    assert Lead.objects.get(pk=lead.pk).rule_score == 25

    with django_capture_on_commit_callbacks(execute=True):
        services.delete_rule(rule=Rule.objects.get(pk=rule.pk), by=boss)
    lead.refresh_from_db()
    assert (lead.rule_score, lead.score_breakdown) == (0, [])

    history = list(RuleChange.objects.order_by("changed_at", "id"))
    assert [h.action for h in history] == ["created", "updated", "deleted"]
    assert all(h.changed_by == boss for h in history)
    assert history[1].before["points"] == 10
    assert history[1].after["points"] == 25
    assert history[2].after is None
    runs = RecomputeRun.objects.order_by("created_at")
    assert [r.status for r in runs] == ["done"] * 3
    assert runs.last().changed_leads == 1


def test_saving_an_unchanged_rule_records_nothing(django_capture_on_commit_callbacks) -> None:
    rule = make_rule()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.save_rule(rule=rule)
    assert callbacks == []
    assert not RuleChange.objects.exists()


def test_waiting_recompute_requests_are_coalesced() -> None:
    first = services.schedule_recompute(reason="one")
    second = services.schedule_recompute(reason="two")
    assert first.pk == second.pk


def test_a_rule_failing_at_evaluation_is_reported_and_skipped() -> None:
    good = make_rule(name="Views", points=5)
    broken = make_rule(
        name="Broken", category="fit", field="employee_count", operator="gt", value="10", points=7
    )
    # Bad data that slipped in around validation (e.g. an old import): the value is not a number.
    Rule.objects.filter(pk=broken.pk).update(value="lots")
    lead = make_lead(employee_count=50)
    make_interaction(lead, "page_view")

    run = services.recompute_all()

    lead.refresh_from_db()
    assert lead.rule_score == 5
    assert [e["rule"] for e in run.errors] == ["Broken"]
    broken.refresh_from_db()
    assert "could not convert" in broken.last_error or "lots" in broken.last_error
    good.refresh_from_db()
    assert good.last_error == ""

    Rule.objects.filter(pk=broken.pk).update(value="10", updated_at=timezone.now())
    services.recompute_all()
    broken.refresh_from_db()
    assert broken.last_error == ""  # fixed: the report clears
    assert Lead.objects.get(pk=lead.pk).rule_score == 12


def test_refresh_decay_task_moves_windowed_points(django_capture_on_commit_callbacks) -> None:
    make_rule(points=5, window_days=7)
    lead = make_lead()
    make_interaction(lead, "page_view", occurred_at=timezone.now() - timedelta(days=6))  # age 6 days
    services.rescore_leads([lead.pk])
    assert Lead.objects.get(pk=lead.pk).rule_score == 5

    services.refresh_decay(now=timezone.now() + timedelta(days=1))  # a day later the view left the window
    assert Lead.objects.get(pk=lead.pk).rule_score == 0


def test_request_rescore_for_many_leads_marks_all_and_queues_only_the_new(monkeypatch) -> None:
    """The set-based path (batches of events, imports): one statement, one set-based task for the
    leads that had no rescore pending; a lead already waiting is only told to look again."""
    from datetime import timedelta

    from django.utils import timezone

    from scoring import services as scoring_services
    from tests.factories import make_lead

    queued: list[int] = []
    names: list[str] = []

    def enqueue(name, lead_ids):
        names.append(name)
        queued.extend(lead_ids)

    monkeypatch.setattr(scoring_services, "enqueue_on_commit", enqueue)
    waiting, fresh_a, fresh_b = make_lead(), make_lead(), make_lead()
    earlier = timezone.now() - timedelta(minutes=5)
    Lead.objects.filter(pk__in=[waiting.pk, fresh_a.pk, fresh_b.pk]).update(rescore_requested_at=None)
    Lead.objects.filter(pk=waiting.pk).update(rescore_requested_at=earlier)

    scoring_services.request_rescore([fresh_b.pk, waiting.pk, fresh_a.pk, fresh_a.pk])

    assert sorted(queued) == sorted([fresh_a.pk, fresh_b.pk])
    assert names == [scoring_services.RESCORE_LEADS_TASK]  # one task for both, not one per lead
    marks = dict(
        Lead.objects.filter(pk__in=[waiting.pk, fresh_a.pk, fresh_b.pk]).values_list(
            "pk", "rescore_requested_at"
        )
    )
    assert all(mark is not None for mark in marks.values())
    assert marks[waiting.pk] > earlier  # the queued task will look again
    scoring_services.request_rescore([])  # nothing to do, no query error


def test_the_set_based_task_scores_clears_and_goes_again_only_for_moved_requests(monkeypatch) -> None:
    make_rule(points=5)
    calm, busy, done = make_lead(), make_lead(), make_lead()
    for lead in (calm, busy, done):
        make_interaction(lead=lead, kind="page_view")
    Lead.objects.filter(pk__in=[calm.pk, busy.pk]).update(rescore_requested_at=timezone.now(), scored_at=None)
    Lead.objects.filter(pk=done.pk).update(rescore_requested_at=None, scored_at=None)
    real = services.rescore_leads

    def events_arrive_meanwhile(ids, **kwargs):
        changed = real(ids, **kwargs)
        Lead.objects.filter(pk=busy.pk).update(rescore_requested_at=timezone.now() + timedelta(seconds=1))
        return changed

    monkeypatch.setattr(services, "rescore_leads", events_arrive_meanwhile)
    again: list = []
    monkeypatch.setattr(tasks.rescore_leads_task, "apply_async", lambda args, countdown: again.append(args))
    tasks.rescore_leads_task([calm.pk, busy.pk, done.pk])
    calm.refresh_from_db()
    busy.refresh_from_db()
    done.refresh_from_db()
    assert calm.scored_at is not None
    assert calm.rescore_requested_at is None
    assert busy.scored_at is not None
    assert busy.rescore_requested_at is not None
    assert done.scored_at is None  # no request: not scored again
    assert again == [([busy.pk],)]
