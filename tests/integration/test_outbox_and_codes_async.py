"""Real parts for the async paths added with the batch outbox and the chat's email codes: commit,
a nudge through Redis, a real worker (threads, in this process) doing the work."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.core import mail

from chatbot import email_codes, services
from demo.site import install_demo_site
from leadcrm.models import Lead, RecordedActivity
from leadcrm.services import BulkEvent, record_interactions_bulk
from tests.factories import make_lead
from tests.integration.test_async_rescore import wait_for

pytestmark = [pytest.mark.integration]


def test_a_batchs_outbox_is_applied_and_its_leads_rescored_by_a_real_worker(celery_worker_real) -> None:
    leads = [make_lead() for _ in range(3)]
    Lead.objects.filter(pk__in=[lead.pk for lead in leads]).update(
        rescore_requested_at=None, scored_at=None, last_activity_at=None
    )
    at = datetime(2026, 1, 5, 10, tzinfo=UTC)
    record_interactions_bulk(
        events=[
            BulkEvent(lead_id=lead.pk, kind=1, occurred_at=at, client_event_id=f"e{n}", payload={})
            for n, lead in enumerate(leads)
        ]
    )
    ids = [lead.pk for lead in leads]
    assert wait_for(
        lambda: (
            not RecordedActivity.objects.exists()
            and Lead.objects.filter(
                pk__in=ids, last_activity_at=at, scored_at__isnull=False, rescore_requested_at__isnull=True
            ).count()
            == 3
        ),
        timeout=20,
    )


def test_an_email_code_is_mailed_by_a_real_worker(celery_worker_real) -> None:
    site = install_demo_site()
    conversation, _ = services.start_conversation(site=site)
    mail.outbox.clear()
    email_codes.request_code(conversation=conversation, email="kim@example.com")
    assert wait_for(lambda: len(mail.outbox) == 1, timeout=20)
    assert mail.outbox[0].to == ["kim@example.com"]
    assert re.search(r"\b\d{6}\b", mail.outbox[0].body)
