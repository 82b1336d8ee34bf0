"""Every admin page a manager uses renders (no 500), and edits rescore."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from leadcrm.models import FollowUp, Interaction, Lead, Segment
from tests.factories import make_follow_up, make_interaction, make_lead, make_segment

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_manager(manager):  # noqa: ANN001, ANN201
    manager.is_staff = True
    manager.save()
    return manager


def test_every_registered_admin_changelist_renders(client, staff_manager) -> None:  # noqa: ANN001
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


def test_lead_change_page_shows_the_reasons(client, staff_manager) -> None:  # noqa: ANN001
    lead = make_lead(
        score_breakdown=[{"rule": "Pricing page", "points": 15, "reason": "Visited pricing: +15"}]
    )
    make_interaction(lead, "email_open")
    client.force_login(staff_manager)
    page = client.get(reverse("admin:leadcrm_lead_change", args=[lead.pk]))
    assert page.status_code == 200
    assert b"Visited pricing: +15" in page.content


@pytest.mark.parametrize("model", [Lead, Interaction, Segment, FollowUp])
def test_add_pages_render(client, staff_manager, model) -> None:  # noqa: ANN001
    client.force_login(staff_manager)
    assert client.get(reverse(f"admin:leadcrm_{model._meta.model_name}_add")).status_code == 200


def test_admin_refuses_a_negative_employee_count_with_a_form_error(client, staff_manager) -> None:  # noqa: ANN001
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


def test_dynamic_segment_with_bad_criteria_is_a_form_error(client, staff_manager) -> None:  # noqa: ANN001
    client.force_login(staff_manager)
    response = client.post(
        reverse("admin:leadcrm_segment_add"),
        {"name": "Bad", "kind": "dynamic", "criteria": '{"shoe_size": 4}', "description": ""},
    )
    assert response.status_code == 200
    assert b"Unknown lead field" in response.content
    assert not Segment.objects.exists()


def test_salesperson_cannot_enter_the_admin(client, salesperson) -> None:  # noqa: ANN001
    client.force_login(salesperson)
    assert client.get("/admin/").status_code == 302
