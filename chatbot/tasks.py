"""Periodic work of the website chat (Celery beat: `chat-purge-empty`, see config/settings.py)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def purge_empty_chats() -> tuple[int, int]:
    """Delete empty anonymous chats older than CHAT_PURGE_EMPTY_AFTER_HOURS and the leads they
    made. Safe to run twice or late: it deletes by what the database holds now."""
    from chatbot.services import purge_empty_conversations

    return purge_empty_conversations(older_than=timedelta(hours=settings.CHAT_PURGE_EMPTY_AFTER_HOURS))
