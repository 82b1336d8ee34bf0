"""One rule for every time that comes from outside: at most FUTURE_SLACK (clock skew) after now."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from rest_framework.test import APIClient

from leadcrm import services
from leadcrm.models import Interaction, InteractionKind, Lead
from tests.factories import make_interaction, make_lead, make_manager

pytestmark = pytest.mark.django_db

FAR = timedelta(hours=4)  # "Last activity: 4 hours from now" in the demo


def test_the_rule_allows_a_small_clock_skew_only() -> None:
    now = timezone.now()
    assert not services.is_future(now + services.FUTURE_SLACK, now=now)
    assert services.is_future(now + services.FUTURE_SLACK + timedelta(seconds=1), now=now)


def test_record_interaction_refuses_a_far_future_time() -> None:
    lead = make_lead()
    with pytest.raises(ValidationError) as exc:
        services.record_interaction(lead=lead, kind="call", occurred_at=timezone.now() + FAR)
    assert exc.value.message_dict == {"occurred_at": ["An interaction cannot happen in the future."]}
    lead.refresh_from_db()
    assert lead.last_activity_at is None
    assert not Interaction.objects.exists()


def test_record_interaction_accepts_a_sender_clock_a_minute_ahead() -> None:
    lead = make_lead()
    services.record_interaction(lead=lead, kind="call", occurred_at=timezone.now() + timedelta(minutes=1))
    assert Interaction.objects.count() == 1


def test_update_interaction_refuses_moving_it_into_the_future() -> None:
    interaction = make_interaction(make_lead(), "call")
    with pytest.raises(ValidationError) as exc:
        services.update_interaction(interaction=interaction, changes={"occurred_at": timezone.now() + FAR})
    assert "occurred_at" in exc.value.message_dict


def test_bulk_events_refuse_a_far_future_event_with_the_reason() -> None:
    lead = make_lead(marketing_consent=True)
    now = timezone.now()
    result = services.record_interactions_bulk(
        events=[
            services.BulkEvent(lead.pk, int(InteractionKind.PAGE_VIEW), now - timedelta(minutes=1), "a1", {}),
            services.BulkEvent(lead.pk, int(InteractionKind.PAGE_VIEW), now + FAR, "a2", {}),
        ],
        now=now,
    )
    assert result.stored == [0]
    assert result.refused == {1: "An interaction cannot happen in the future."}


def test_load_history_refuses_future_interactions_and_lead_times() -> None:
    now = timezone.now()
    lead = Lead(first_name="Future", email="future@example.com", created_at=now - timedelta(days=3))
    with pytest.raises(ValidationError) as exc:
        services.load_history(
            leads=[lead],
            interactions=[[Interaction(kind=InteractionKind.CALL, occurred_at=now + FAR, created_at=now)]],
        )
    assert "cannot happen in the future" in " ".join(exc.value.messages)
    late = Lead(first_name="Late", email="late@example.com", created_at=now - timedelta(days=3))
    late.last_activity_at = now + FAR
    with pytest.raises(ValidationError) as exc:
        services.load_history(leads=[late])
    assert exc.value.message_dict.keys() == {"last_activity_at"}
    assert not Lead.objects.exists()


def test_import_refuses_a_lead_created_in_the_future() -> None:
    row = services.ImportRow(
        line=2,
        fields={"email": "ahead@example.com", "first_name": "Ahead", "created_at": timezone.now() + FAR},
    )
    result = services.import_leads(rows=[row])
    assert [(r.action, r.reason) for r in result.rows] == [
        ("refuse", "created_at: a lead cannot be created in the future.")
    ]
    assert not Lead.objects.exists()


def test_api_refuses_a_far_future_interaction_with_a_message() -> None:
    lead = make_lead()
    api = APIClient()
    api.force_authenticate(make_manager())
    response = api.post(
        f"/api/v1/leads/{lead.pk}/interactions/",
        {"kind": "call", "occurred_at": (timezone.now() + FAR).isoformat()},
        format="json",
    )
    assert response.status_code == 400
    assert "cannot happen in the future" in response.content.decode()
    assert not Interaction.objects.exists()
