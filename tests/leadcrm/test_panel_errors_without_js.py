"""Without JavaScript a refused panel form comes back as the whole page with its error (not a
redirect that loses it), as the README promises; with HTMX the panel alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from leadcrm.models import FollowUp, Interaction, Lead
from tests.factories import make_lead

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def seller_client(client, salesperson):
    client.force_login(salesperson)
    return client


def _page(response) -> str:
    html = response.content.decode()
    assert "<html" in html  # the whole page, styled, with the queue and the lead open
    assert 'id="lead-panel"' in html
    return html


def test_lost_without_a_reason_shows_the_form_again_with_the_error(seller_client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    response = seller_client.post(
        reverse("leadcrm:log_outcome", args=[lead.pk]),
        {"kind": "call", "status": "lost", "notes": "No budget"},
    )
    assert response.status_code == 400
    html = _page(response)
    assert "Say why the lead was lost." in html
    assert 'aria-invalid="true" aria-describedby="outcome-lost-err"' in html
    assert "No budget" in html  # what they typed is kept
    assert Lead.objects.get(pk=lead.pk).status == "new"


def test_an_empty_note_is_refused_on_the_page(seller_client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    response = seller_client.post(
        reverse("leadcrm:log_outcome", args=[lead.pk]), {"kind": "note", "notes": ""}
    )
    assert response.status_code == 400
    assert "nothing to log" in _page(response)
    assert not Interaction.objects.exists()


def test_a_follow_up_in_the_past_is_refused_on_the_page(seller_client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    past = (timezone.localtime() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = seller_client.post(
        reverse("leadcrm:add_follow_up", args=[lead.pk]), {"due_at": past, "note": "Ring about the cake"}
    )
    assert response.status_code == 400
    html = _page(response)
    assert "cannot be due in the past" in html
    assert f'value="{past}"' in html
    assert "Ring about the cake" in html
    assert not FollowUp.objects.exists()


def test_an_outcome_on_an_unclaimed_lead_is_refused_on_the_page(seller_client) -> None:
    lead = make_lead(owner=None)
    response = seller_client.post(reverse("leadcrm:log_outcome", args=[lead.pk]), {"kind": "call"})
    assert response.status_code == 403
    assert "Claim this lead before logging outcomes on it." in _page(response)
    assert not Interaction.objects.exists()


def test_success_still_redirects(seller_client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    response = seller_client.post(
        reverse("leadcrm:log_outcome", args=[lead.pk]), {"kind": "call", "notes": "Left a message"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("leadcrm:lead", args=[lead.pk])


def test_with_htmx_the_error_comes_back_as_the_panel_alone(seller_client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    response = seller_client.post(
        reverse("leadcrm:log_outcome", args=[lead.pk]), {"kind": "call", "status": "lost"}, **HX
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "<html" not in html
    assert "Say why the lead was lost." in html
