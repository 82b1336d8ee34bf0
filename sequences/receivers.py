"""The chat's callback request is a sequence trigger (chatbot.signals.callback_requested)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from chatbot.signals import callback_requested
from sequences import services
from sequences.models import Trigger

logger = logging.getLogger(__name__)


@receiver(callback_requested, dispatch_uid="sequences.callback_requested")
def enrol_on_callback(sender: Any, *, lead_id: int, **kwargs: Any) -> None:
    """A visitor asked for a callback: their lead enters the callback sequence, if there is one.

    The visitor's callback matters more than the sequence: a failure here is logged, and the
    chat's transaction goes on without the enrolment (a savepoint undoes what it wrote)."""
    try:
        with transaction.atomic():
            services.enrol_by_trigger(trigger=Trigger.CALLBACK, lead_id=lead_id)
    except Exception:
        logger.exception("Could not enrol lead %s in the callback sequence", lead_id)
