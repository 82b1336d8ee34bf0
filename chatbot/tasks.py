"""Tasks of the website chat: the periodic purge (Celery beat: `chat-purge-empty`, see
config/settings.py) and mailing one-time email codes."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def purge_empty_chats() -> tuple[int, int]:
    """Delete empty anonymous chats older than CHAT_PURGE_EMPTY_AFTER_HOURS and the leads they
    made, and email codes past their expiry. Safe to run twice or late: it deletes by what the
    database holds now. Returns (conversations, leads) deleted."""
    from chatbot.email_codes import purge_expired
    from chatbot.services import purge_empty_conversations

    purge_expired()
    return purge_empty_conversations(older_than=timedelta(hours=settings.CHAT_PURGE_EMPTY_AFTER_HOURS))


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def send_email_code(code_id: int, envelope: str) -> bool:
    """Mail a one-time code (queued after commit by chatbot.email_codes.request_code). `envelope`
    is the encrypted address and code; nothing is sent once the code was replaced, used or expired."""
    from chatbot.email_codes import deliver

    return deliver(code_id, envelope)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def calibrate_faq(site_id: int) -> float | None:
    """Recalibrate a site's FAQ answer threshold (queued after an FAQ change commits); a no-op
    when the stored calibration is already of the current FAQ. Returns the threshold chosen."""
    from chatbot.faq import recalibrate

    result = recalibrate(site_id)
    return result.threshold if result is not None else None


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def advance_waiting_chat(conversation_id: int) -> tuple[int, int]:
    """Countdown task sent after a hand-off: offer the chat to everyone / escalate it to the managers
    if still unanswered (chatbot.escalation). A no-op if answered, early, or already done."""
    from chatbot.escalation import advance_waiting_chats

    return advance_waiting_chats(ids=[conversation_id])


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def advance_waiting_chats() -> tuple[int, int]:
    """Beat, every 15 s: the same for every waiting chat (the safety net for a lost countdown task)."""
    from chatbot.escalation import advance_waiting_chats

    return advance_waiting_chats()
