"""Every admin page a manager uses renders (no 500), and edits rescore."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from leadcrm.models import FollowUp, Interaction, InteractionKind, Lead, Segment
from scoring.ml.features import training_leads
from scoring.ml.reports import accuracy_report
from scoring.models import ScoreSnapshot
from tests.factories import make_follow_up, make_interaction, make_lead, make_segment

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_manager(manager):
    manager.is_staff = True
    manager.save()
    return manager


def test_every_registered_admin_changelist_renders(client, staff_manager) -> None:
    lead = make_lead(
        score_breakdown=[{"rule": "Pricing page", "points": 15, "reason": "Visited pricing: +15"}]
    )
    make_interaction(lead, "page_view", payload={"url": "/pricing"})
    make_follow_up(lead)
    make_segment()
    client.force_login(staff_manager)
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 200, url
        assert client.get(url + "?q=ada").status_code == 200, url


def test_lead_change_page_shows_the_reasons(client, staff_manager) -> None:
    lead = make_lead(
        score_breakdown=[{"rule": "Pricing page", "points": 15, "reason": "Visited pricing: +15"}]
    )
    make_interaction(lead, "email_open")
    client.force_login(staff_manager)
    page = client.get(reverse("admin:leadcrm_lead_change", args=[lead.pk]))
    assert page.status_code == 200
    assert b"Visited pricing: +15" in page.content


@pytest.mark.parametrize("model", [Lead, Interaction, Segment, FollowUp])
def test_add_pages_render(client, staff_manager, model) -> None:
    client.force_login(staff_manager)
    assert client.get(reverse(f"admin:leadcrm_{model._meta.model_name}_add")).status_code == 200


def test_admin_refuses_a_negative_employee_count_with_a_form_error(client, staff_manager) -> None:
    client.force_login(staff_manager)
    response = client.post(
        reverse("admin:leadcrm_lead_add"),
        {
            "first_name": "X",
            "employee_count": "-5",
            "source": "other",
            "status": "new",
            "custom": "{}",
            "follow_ups-TOTAL_FORMS": "0",
            "follow_ups-INITIAL_FORMS": "0",
            "interactions-TOTAL_FORMS": "0",
            "interactions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert b"errornote" in response.content or b"errorlist" in response.content
    assert not Lead.objects.exists()


def test_dynamic_segment_with_bad_criteria_is_a_form_error(client, staff_manager) -> None:
    client.force_login(staff_manager)
    response = client.post(
        reverse("admin:leadcrm_segment_add"),
        {"name": "Bad", "kind": "dynamic", "criteria": '{"shoe_size": 4}', "description": ""},
    )
    assert response.status_code == 200
    assert b"Unknown lead field" in response.content
    assert not Segment.objects.exists()


def test_salesperson_cannot_enter_the_admin(client, salesperson) -> None:
    client.force_login(salesperson)
    assert client.get("/admin/").status_code == 302


# --- The admin writes through the services ----------------------------------------------------------


def _editable_fields(model_admin: admin.ModelAdmin, request: object, obj: object) -> list[str]:
    names: list[str] = []
    for _title, options in model_admin.get_fieldsets(request, obj):
        for entry in options["fields"]:
            names.extend(entry if isinstance(entry, tuple | list) else [entry])
    readonly = set(model_admin.get_readonly_fields(request, obj))
    return [name for name in names if name not in readonly]


def lead_form_data(lead: Lead, **changes: object) -> dict[str, object]:
    """What the admin's change form posts for `lead`, with `changes` typed in."""
    request = RequestFactory().get("/")
    request.user = User(is_superuser=True)
    data: dict[str, object] = {}
    for name in _editable_fields(admin.site._registry[Lead], request, lead):
        # consent_text is the form's own field (how they agreed), not a column: blank unless typed.
        value = changes.get(name, getattr(lead, "owner_id" if name == "owner" else name, ""))
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue  # an unticked checkbox is absent
        data[name] = json.dumps(value) if name == "custom" else ("" if value is None else value)
    for prefix in ("follow_ups", "interactions", "consents"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    return data


def test_a_lead_won_in_the_admin_is_stamped_logged_rescored_and_counts_for_the_model(
    client, staff_manager, django_capture_on_commit_callbacks
) -> None:
    lead = make_lead(status="working", owner=staff_manager)
    # A prediction made before the outcome: the live-accuracy report judges it once the lead closes.
    ScoreSnapshot.objects.create(
        lead=lead, taken_at=timezone.now() - timezone.timedelta(days=3), rule_score=10, ml_probability=0.7
    )
    client.force_login(staff_manager)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:leadcrm_lead_change", args=[lead.pk]), lead_form_data(lead, status="won")
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    lead.refresh_from_db()
    assert lead.status == "won"
    assert lead.closed_at is not None
    assert lead.status_changed_at == lead.closed_at
    note = lead.interactions.get(kind=InteractionKind.NOTE)
    assert note.payload["status_from"] == "working"
    assert note.payload["status_to"] == "won"
    assert note.logged_by == staff_manager
    assert lead.scored_at is not None
    assert lead.rescore_requested_at is None
    assert list(training_leads()) == [lead]
    report = accuracy_report()
    assert (report.outcomes, report.won) == (1, 1)


def test_a_lead_lost_in_the_admin_needs_a_reason_and_keeps_it(client, staff_manager) -> None:
    lead = make_lead(status="qualified")
    client.force_login(staff_manager)
    url = reverse("admin:leadcrm_lead_change", args=[lead.pk])

    refused = client.post(url, lead_form_data(lead, status="lost"))
    assert refused.status_code == 200
    assert b"Say why the lead was lost" in refused.content
    lead.refresh_from_db()
    assert lead.status == "qualified"
    assert lead.closed_at is None

    client.post(url, lead_form_data(lead, status="lost", lost_reason="Went with a competitor"))
    lead.refresh_from_db()
    assert (lead.status, lead.lost_reason) == ("lost", "Went with a competitor")
    assert lead.closed_at is not None
    assert lead.interactions.filter(kind=InteractionKind.NOTE, payload__status_to="lost").exists()


def test_profile_edits_in_the_admin_rescore_and_stamp_consent(
    client, staff_manager, django_capture_on_commit_callbacks
) -> None:
    lead = make_lead(job_title="Intern")
    client.force_login(staff_manager)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        client.post(
            reverse("admin:leadcrm_lead_change", args=[lead.pk]),
            lead_form_data(
                lead, job_title="CEO", marketing_consent=True, consent_text="Said yes on the phone"
            ),
        )
    lead.refresh_from_db()
    assert lead.job_title == "CEO"
    assert lead.marketing_consent_at is not None  # the service's consent stamp
    consent = lead.consents.get()
    assert (consent.purpose, consent.granted, consent.source) == ("marketing", True, "admin")
    assert (consent.text, consent.recorded_by) == ("Said yes on the phone", staff_manager)
    assert len(callbacks) == 1
    assert lead.scored_at is not None
    assert not lead.interactions.exists()  # no status change, no timeline note


def test_a_lead_added_in_the_admin_goes_through_create_lead(
    client, staff_manager, django_capture_on_commit_callbacks
) -> None:
    client.force_login(staff_manager)
    data = lead_form_data(Lead(email="new@example.com", first_name="New"), status="won")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:leadcrm_lead_add"), data)
    assert response.status_code == 302
    lead = Lead.objects.get(email="new@example.com")
    assert lead.closed_at is not None
    assert lead.status_changed_at is not None
    assert lead.scored_at is not None


def test_interactions_added_in_the_admin_bump_activity_and_rescore(
    client, staff_manager, django_capture_on_commit_callbacks
) -> None:
    lead = make_lead()
    client.force_login(staff_manager)
    when = timezone.now() - timezone.timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:leadcrm_interaction_add"),
            {
                "lead": lead.pk,
                "kind": InteractionKind.PAGE_VIEW,
                "channel": "web",
                "occurred_at_0": when.strftime("%Y-%m-%d"),
                "occurred_at_1": when.strftime("%H:%M:%S"),
                "payload": '{"url": "/pricing"}',
                "sentiment": "",
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    lead.refresh_from_db()
    assert lead.interactions.count() == 1
    assert lead.last_activity_at is not None
    assert lead.scored_at is not None


def test_an_interaction_deleted_in_the_admin_rescores_its_lead(
    client, staff_manager, django_capture_on_commit_callbacks
) -> None:
    lead = make_lead()
    interaction = make_interaction(lead, "form_submit")
    client.force_login(staff_manager)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:leadcrm_interaction_delete", args=[interaction.pk]), {"post": "yes"})
    lead.refresh_from_db()
    assert not lead.interactions.exists()
    assert lead.scored_at is not None
