"""The one routing rule (leadcrm.routing) and the promises it owns (follow-ups never without an
owner, handed on when a user leaves, escalated once when overdue)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from leadcrm import realtime as delivery
from leadcrm import routing, services
from leadcrm.alerts import MANAGERS_GROUP, user_group
from leadcrm.models import FollowUp, StaffProfile
from tests.factories import make_lead, make_manager, make_user

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def on_duty(user, *, at=None):
    services.set_on_duty(user=user, on_duty=True, now=at or NOW - timedelta(hours=1))
    return user


@pytest.fixture
def sent(monkeypatch) -> list[tuple[tuple[str, ...], dict]]:
    calls: list[tuple[tuple[str, ...], dict]] = []
    monkeypatch.setattr(
        delivery, "send_now", lambda groups, *events: calls.extend((tuple(groups), e) for e in events)
    )
    return calls


# --- Chats: route() -------------------------------------------------------------------------------


def test_the_owner_on_duty_gets_their_leads_chat() -> None:
    owner, other = on_duty(make_user("owner")), on_duty(make_user("other"))
    lead = make_lead(owner=owner)
    assert routing.route(lead, now=NOW) == owner
    assert routing.route(lead, now=NOW) == owner  # the owner, however often
    assert routing.route(lead, now=NOW, exclude={owner.pk}) == other


def test_an_owner_off_duty_means_round_robin_among_those_on_duty() -> None:
    owner = make_user("owner")  # off duty
    on_duty(make_user("ann"), at=NOW - timedelta(hours=2))
    on_duty(make_user("bob"), at=NOW - timedelta(hours=1))
    lead = make_lead(owner=owner)
    picks = [routing.route(lead, now=NOW + timedelta(seconds=i)) for i in range(5)]
    assert [u.username for u in picks] == ["ann", "bob", "ann", "bob", "ann"]
    assert owner not in picks


def test_round_robin_is_fair_and_a_newcomer_joins_the_end_of_the_line() -> None:
    _ann, _bob = on_duty(make_user("ann")), on_duty(make_user("bob"))
    first = [routing.route(None, now=NOW + timedelta(seconds=i)).username for i in range(4)]
    assert sorted(first) == ["ann", "ann", "bob", "bob"]
    cat = make_user("cat")
    services.set_on_duty(user=cat, on_duty=True, now=NOW + timedelta(seconds=10))
    later = [routing.route(None, now=NOW + timedelta(seconds=20 + i)).username for i in range(3)]
    assert later[-1] == "cat"  # ann and bob waited longer
    assert sorted(later) == ["ann", "bob", "cat"]


def test_a_chat_given_to_the_owner_counts_as_their_turn() -> None:
    ann, bob = on_duty(make_user("ann"), at=NOW - timedelta(hours=2)), on_duty(make_user("bob"))
    routing.route(make_lead(owner=ann), now=NOW)
    assert routing.route(None, now=NOW + timedelta(seconds=1)) == bob


def test_managers_take_chats_only_when_no_salesperson_is_on_duty() -> None:
    boss = on_duty(make_manager("boss"))
    sam = make_user("sam")
    assert routing.route(make_lead(), now=NOW) == boss
    on_duty(sam)
    assert routing.route(make_lead(), now=NOW + timedelta(seconds=1)) == sam
    assert routing.route(make_lead(), now=NOW + timedelta(seconds=2)) == sam


def test_nobody_on_duty_means_nobody() -> None:
    make_user("sam")
    make_manager("boss")
    services.set_on_duty(user=make_user("was"), on_duty=False, now=NOW)
    assert routing.route(make_lead(), now=NOW) is None
    assert not routing.anyone_on_duty()


def test_inactive_users_and_users_without_a_role_are_never_routed() -> None:
    gone = on_duty(make_user("gone"))
    gone.is_active = False
    gone.save()
    roleless = on_duty(make_user("visitor-ish", role=None))
    lead = make_lead(owner=gone)
    assert routing.route(lead, now=NOW) is None
    assert not routing.is_on_duty(gone)
    assert not routing.is_on_duty(roleless)
    sam = on_duty(make_user("sam"))
    assert routing.route(lead, now=NOW) == sam


@pytest.mark.django_db(transaction=True)
def test_two_chats_at_once_go_to_two_people_and_nobody_waits_on_a_lock() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks with SKIP LOCKED need PostgreSQL")
    ann = on_duty(make_user("ann"), at=NOW - timedelta(hours=2))
    bob = on_duty(make_user("bob"), at=NOW - timedelta(hours=1))
    holding, release = threading.Event(), threading.Event()
    first: list = []

    def hand_off_and_hold() -> None:
        try:
            with transaction.atomic():
                first.append(routing.route(None, now=NOW))
                holding.set()
                release.wait(10)  # the first hand-off's transaction is still open
        finally:
            connection.close()

    thread = threading.Thread(target=hand_off_and_hold)
    thread.start()
    assert holding.wait(10)
    try:
        with transaction.atomic():
            # Ann's row is locked by the first hand-off: skipped, not waited for.
            second = routing.route(None, now=NOW)
    finally:
        release.set()
        thread.join(10)
    assert (first[0], second) == (ann, bob)


# --- Promises: promise_owner() and follow-ups -----------------------------------------------------


def test_a_promise_stays_with_the_leads_owner_even_off_duty() -> None:
    owner = make_user("owner")
    on_duty(make_user("sam"))
    assert routing.promise_owner(make_lead(owner=owner), now=NOW) == owner


def test_a_promise_on_an_unowned_lead_goes_to_someone_on_duty_then_the_fallback_then_a_manager() -> None:
    busy, idle = make_manager("busy"), make_manager("idle")
    services.add_follow_up(lead=make_lead(), due_at=NOW + timedelta(days=1), assigned_to=busy, now=NOW)
    handoff = make_user("front-desk")
    lead = make_lead()
    assert routing.promise_owner(lead, now=NOW) == idle  # nobody on duty, no fallback: least busy
    assert routing.promise_owner(lead, now=NOW, fallback=handoff) == handoff
    handoff.is_active = False
    handoff.save()
    assert routing.promise_owner(lead, now=NOW, fallback=handoff) == idle
    sam = on_duty(make_user("sam"))
    assert routing.promise_owner(lead, now=NOW, fallback=handoff) == sam


def test_no_manager_at_all_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="add a manager"):
        routing.promise_owner(make_lead(), now=NOW)


def test_a_follow_up_is_never_created_without_an_owner() -> None:
    boss = make_manager("boss")
    follow_up = services.add_follow_up(lead=make_lead(), due_at=NOW + timedelta(hours=2), now=NOW)
    assert follow_up.assigned_to == boss  # nobody named, no lead owner, nobody on duty
    maker = make_user("maker")
    mine = services.add_follow_up(
        lead=make_lead(), due_at=NOW + timedelta(hours=2), created_by=maker, now=NOW
    )
    assert mine.assigned_to == maker  # a person's own promise is theirs


def test_the_database_refuses_an_open_follow_up_without_an_owner() -> None:
    lead = make_lead()
    FollowUp.objects.create(lead=lead, due_at=NOW, done_at=NOW)  # a done one may have lost its owner
    with pytest.raises(IntegrityError), transaction.atomic():
        FollowUp.objects.create(lead=lead, due_at=NOW + timedelta(days=1))


def test_unassigning_a_follow_up_is_refused_with_a_message() -> None:
    follow_up = services.add_follow_up(
        lead=make_lead(), due_at=NOW + timedelta(days=1), assigned_to=make_manager(), now=NOW
    )
    with pytest.raises(ValidationError) as error:
        services.update_follow_up(follow_up=follow_up, changes={"assigned_to": None}, now=NOW)
    assert "needs an owner" in str(error.value.message_dict["assigned_to"])


def test_a_deleted_user_hands_their_open_follow_ups_on_by_the_routing_rule() -> None:
    leaving, boss = make_user("leaving"), make_manager("boss")
    sam = on_duty(make_user("sam"))
    own = make_lead(owner=leaving)
    open_one = services.add_follow_up(lead=own, due_at=NOW + timedelta(days=1), now=NOW)
    done = services.add_follow_up(lead=own, due_at=NOW + timedelta(days=1), now=NOW)
    services.complete_follow_up(follow_up=done, now=NOW)
    assert open_one.assigned_to == leaving
    leaving.delete()
    open_one.refresh_from_db()
    done.refresh_from_db()
    assert open_one.assigned_to == sam  # on duty now; the lead lost its owner with them
    assert done.assigned_to is None
    assert boss.follow_ups.count() == 0


# --- Overdue escalation ---------------------------------------------------------------------------


def test_an_overdue_follow_up_alerts_its_owner_then_the_managers_once_each(
    sent, settings, django_capture_on_commit_callbacks
) -> None:
    settings.FOLLOW_UP_ESCALATE_AFTER_MIN = 60
    owner, boss = make_user("owner"), make_manager("boss")
    due = NOW + timedelta(minutes=10)
    follow_up = services.add_follow_up(lead=make_lead(owner=owner), due_at=due, now=NOW)

    def sweep(at):
        with django_capture_on_commit_callbacks(execute=True):
            return services.escalate_overdue_follow_ups(now=at)

    assert sweep(due - timedelta(seconds=1)) == (0, 0)
    assert sweep(due + timedelta(seconds=1)) == (1, 0)
    assert sweep(due + timedelta(minutes=5)) == (0, 0)  # once
    assert [g for g, _ in sent] == [(user_group(owner.pk),)]
    assert sent[0][1]["kind"] == "followup.overdue"
    assert sent[0][1]["follow_ups"] == [follow_up.pk]
    assert sweep(due + timedelta(minutes=61)) == (0, 1)
    assert sweep(due + timedelta(minutes=90)) == (0, 0)  # once
    assert sent[-1][0] == (MANAGERS_GROUP,)
    assert sent[-1][1]["escalated"] is True
    follow_up.refresh_from_db()
    assert follow_up.escalated_at == due + timedelta(minutes=61)
    assert boss.pk  # the managers' group reaches every manager's pages

    # Rescheduled: a new promise, a new clock.
    later = due + timedelta(hours=3)
    services.update_follow_up(follow_up=follow_up, changes={"due_at": later}, now=due + timedelta(hours=2))
    follow_up.refresh_from_db()
    assert (follow_up.overdue_alerted_at, follow_up.escalated_at) == (None, None)
    assert sweep(later + timedelta(seconds=1)) == (1, 0)


def test_done_follow_ups_never_escalate(sent, django_capture_on_commit_callbacks) -> None:
    follow_up = services.add_follow_up(
        lead=make_lead(), due_at=NOW + timedelta(minutes=1), assigned_to=make_manager(), now=NOW
    )
    services.complete_follow_up(follow_up=follow_up, now=NOW)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.escalate_overdue_follow_ups(now=NOW + timedelta(days=1)) == (0, 0)
    assert sent == []


def test_staff_profile_rows_are_made_on_demand() -> None:
    sam = make_user("sam")
    assert not StaffProfile.objects.filter(user=sam).exists()
    assert not routing.is_on_duty(sam)
    on_duty(sam)
    assert routing.is_on_duty(sam)


# --- Pages: the on-duty toggle, the managers' unowned-or-overdue list ------------------------------


def test_the_on_duty_toggle_works_with_htmx_and_without(client) -> None:
    sam = make_user("sam")
    client.force_login(sam)
    assert "Off duty" in client.get("/crm/follow-ups/").content.decode()
    fragment = client.post("/crm/on-duty/", {"on_duty": "1"}, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    assert "On duty" in fragment.content.decode()
    assert routing.is_on_duty(sam)
    plain = client.post("/crm/on-duty/", {"on_duty": "0", "next": "/crm/follow-ups/"})
    assert (plain.status_code, plain["Location"]) == (302, "/crm/follow-ups/")
    assert not routing.is_on_duty(sam)
    away = client.post("/crm/on-duty/", {"on_duty": "1", "next": "https://evil.example/"})
    assert away["Location"] == "/"
    bad = client.post("/crm/on-duty/", {"on_duty": "maybe"})
    assert bad.status_code == 400
    assert "Choose on duty or off duty" in bad.content.decode()


def test_users_without_a_role_have_no_toggle(client) -> None:
    client.force_login(make_user("visitor-ish", role=None))
    assert client.post("/crm/on-duty/", {"on_duty": "1"}).status_code == 403


def overdue(lead, owner):
    return services.add_follow_up(
        lead=lead, due_at=NOW - timedelta(hours=1), assigned_to=owner, now=NOW - timedelta(hours=2)
    )


def test_managers_see_the_teams_overdue_and_orphaned_follow_ups_salespeople_do_not(client) -> None:
    sam, ann, boss = make_user("sam"), make_user("ann"), make_manager("boss")
    late = overdue(make_lead(owner=sam, first_name="Late"), sam)
    left = services.add_follow_up(
        lead=make_lead(first_name="Orphan"), due_at=NOW + timedelta(days=1), assigned_to=ann, now=NOW
    )
    ann.is_active = False
    ann.save()
    services.add_follow_up(lead=make_lead(first_name="Fine"), due_at=NOW + timedelta(days=1), assigned_to=sam)
    client.force_login(sam)
    assert client.get("/crm/follow-ups/attention/").status_code == 403
    client.force_login(boss)
    page = client.get("/crm/follow-ups/attention/").content.decode()
    assert "Late" in page
    assert "Orphan" in page
    assert "Fine" not in page
    assert ">left<" in page
    assert late.pk
    assert left.pk


def test_a_manager_reassigns_with_htmx_or_a_plain_form_and_errors_stay_in_place(client) -> None:
    sam, ann, boss = make_user("sam"), make_user("ann", first_name="Ann"), make_manager("boss")
    follow_up = overdue(make_lead(owner=sam), sam)
    client.force_login(boss)
    url = f"/crm/follow-ups/{follow_up.pk}/reassign/"
    field = f"f{follow_up.pk}-assigned_to"
    row = client.post(url, {field: ann.pk}, HTTP_HX_REQUEST="true")
    assert row.status_code == 200
    assert "Given to Ann." in row.content.decode()
    follow_up.refresh_from_db()
    assert follow_up.assigned_to == ann
    assert follow_up.overdue_alerted_at is None
    bad = client.post(url, {field: 987654}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 400
    assert "Pick someone who works here." in bad.content.decode()
    plain_bad = client.post(url, {field: ""})
    assert plain_bad.status_code == 400
    assert "Pick who does it." in plain_bad.content.decode()
    assert "<h1>Unowned or overdue follow-ups</h1>" in plain_bad.content.decode()
    plain = client.post(url, {field: sam.pk})
    assert (plain.status_code, plain["Location"]) == (302, "/crm/follow-ups/attention/")
    client.force_login(sam)
    assert client.post(url, {field: sam.pk}).status_code == 403  # managers only


def test_the_api_refuses_to_unassign_a_follow_up(client) -> None:
    boss = make_manager("boss")
    follow_up = services.add_follow_up(lead=make_lead(), due_at=NOW + timedelta(days=1), assigned_to=boss)
    client.force_login(boss)
    response = client.patch(
        f"/api/v1/follow-ups/{follow_up.pk}/", {"assigned_to": None}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "needs an owner" in str(response.json())
    follow_up.refresh_from_db()
    assert follow_up.assigned_to == boss


def test_the_migration_gives_existing_open_follow_ups_an_owner_by_the_rule() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("drops the constraint inside the test's transaction (transactional DDL)")
    from importlib import import_module

    from django.apps import apps

    migration = import_module("leadcrm.migrations.0014_followup_owner_and_escalation")
    [constraint] = [c for c in FollowUp._meta.constraints if c.name == "followup_open_has_owner"]
    with connection.schema_editor() as editor:  # as before the migrations: rolled back with the test
        editor.remove_constraint(FollowUp, constraint)
    owner, maker, gone = make_user("owner"), make_user("maker"), make_user("gone", is_active=False)
    busy, idle = make_manager("busy"), make_manager("idle")
    FollowUp.objects.create(lead=make_lead(), due_at=NOW, assigned_to=busy)
    owned = FollowUp.objects.create(lead=make_lead(owner=owner), due_at=NOW)
    made = FollowUp.objects.create(lead=make_lead(owner=gone), due_at=NOW, created_by=maker)
    orphan = FollowUp.objects.create(lead=make_lead(), due_at=NOW, created_by=gone)
    done = FollowUp.objects.create(lead=make_lead(), due_at=NOW, done_at=NOW)
    migration.assign_owners(apps, None)
    got = {f.pk: f.assigned_to_id for f in FollowUp.objects.all()}
    assert (got[owned.pk], got[made.pk], got[orphan.pk], got[done.pk]) == (owner.pk, maker.pk, idle.pk, None)
