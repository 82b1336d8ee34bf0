"""One-time email codes: a chat visitor proves that an email address is theirs (docs/chat.md).

`request_code` makes a 6-digit code (`secrets.randbelow`) for one conversation and one address.
The database keeps neither: only keyed hashes (HMAC-SHA256, keys derived from SECRET_KEY) of the
lower-cased address and of conversation + address + code, with the expiry and the wrong tries.
The code and the address travel to the mail task (`chatbot.tasks.send_email_code`, queued after
commit) in an encrypted envelope that expires with the code (Fernet), so neither sits in plain
text in the broker, in a task's arguments or in a log. Nothing is looked up by the address here:
the answer and its timing are the same whether or not a lead has it.

`confirm_code` compares the conversation's live code for that address in constant time. A wrong
code counts a try and MAX_ATTEMPTS void it; an expired or used code is refused; a new code
replaces the conversation's unused ones. On success `chatbot.services.verify_email` links the chat
to the lead with that address. The limits on asking (per conversation, address, IP and site) and
on confirming are the widget API's throttles (chatbot.api).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
import secrets
from datetime import datetime, timedelta
from email.utils import formataddr, parseaddr

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from chatbot import services
from chatbot.models import Conversation, EmailCode, Site
from config.on_commit import enqueue_on_commit
from leadcrm.models import Lead

logger = logging.getLogger(__name__)

SEND_TASK = "chatbot.tasks.send_email_code"
MAX_ATTEMPTS = 5  # wrong codes before a code is void
CODE_DIGITS = 6
CODE_RE = re.compile(r"^[0-9]{6}$")
_SALT = "chatbot.email_codes."

REQUEST_ANSWER = (
    "If this address is yours, a code is on its way. Type it here; it works for {minutes} minutes."
)
NO_CODE = "No code is waiting for this address in this chat. Ask for a new one."
USED = "This code was already used. Ask for a new one."
EXPIRED = "This code has expired. Ask for a new one."
VOID = "Too many wrong codes: this one no longer works. Ask for a new one."
ALREADY = "This chat is already verified."


def code_lifetime() -> timedelta:
    return timedelta(minutes=settings.CHAT_EMAIL_CODE_MINUTES)


def request_answer() -> str:
    """What every request for a code answers, known address or not."""
    return REQUEST_ANSWER.format(minutes=settings.CHAT_EMAIL_CODE_MINUTES)


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def email_hash(email: str) -> str:
    """Keyed hash of the lower-cased address: what the database and the rate limits keep."""
    return salted_hmac(_SALT + "address", normalise_email(email), algorithm="sha256").hexdigest()


def _code_hash(conversation_id: int, address_hash: str, code: str) -> str:
    # Conversation and address inside: a code is good for that chat and that address only.
    return salted_hmac(
        _SALT + "code", f"{conversation_id}:{address_hash}:{code}", algorithm="sha256"
    ).hexdigest()


def _fernet() -> Fernet:
    key = salted_hmac(_SALT + "envelope", "fernet", algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _seal(code_id: int, email: str, code: str) -> str:
    return _fernet().encrypt(json.dumps([code_id, email, code]).encode()).decode()


def _open(envelope: str) -> tuple[int, str, str] | None:
    """The envelope's (code id, address, code); None once it is older than a code lives, or altered."""
    try:
        code_id, email, code = json.loads(
            _fernet().decrypt(envelope.encode(), ttl=int(code_lifetime().total_seconds()))
        )
    except (InvalidToken, ValueError, TypeError):
        return None
    return int(code_id), str(email), str(code)


def request_code(*, conversation: Conversation, email: str, now: datetime | None = None) -> EmailCode:
    """A new code for this conversation and address, mailed after commit (the conversation's
    unused codes stop working). Raises ValidationError for a malformed address or a chat that is
    already verified; never says whether the address is known."""
    now = now or timezone.now()
    email = normalise_email(email)
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "That email address does not look right."}) from None
    with transaction.atomic():
        # The row lock serialises this conversation's requests (one live code at a time).
        conversation = Conversation.objects.select_for_update(of=("self",)).get(pk=conversation.pk)
        if conversation.identity_verified:
            raise ValidationError({"email": ALREADY})
        EmailCode.objects.filter(conversation=conversation, used_at__isnull=True).delete()
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        address_hash = email_hash(email)
        row = EmailCode.objects.create(
            conversation=conversation,
            email_hash=address_hash,
            code_hash=_code_hash(conversation.pk, address_hash, code),
            created_at=now,
            expires_at=now + code_lifetime(),
        )
        enqueue_on_commit(SEND_TASK, row.pk, _seal(row.pk, email, code))
    return row


def deliver(code_id: int, envelope: str, *, now: datetime | None = None) -> bool:
    """Mail the code (the task). Nothing is sent for a code that was replaced, used, voided or
    has expired meanwhile, or for an envelope that is too old or altered. Never raises for a mail
    server's refusal: it is logged (without the address) and the visitor can ask again."""
    now = now or timezone.now()
    opened = _open(envelope)
    if opened is None or opened[0] != code_id:
        logger.warning("An email code envelope could not be opened (expired or altered); nothing sent")
        return False
    _, email, code = opened
    row = (
        EmailCode.objects.select_related("conversation__site")
        .filter(pk=code_id, used_at__isnull=True, attempts__lt=MAX_ATTEMPTS, expires_at__gt=now)
        .first()
    )
    if row is None or not hmac.compare_digest(
        row.code_hash.encode(), _code_hash(row.conversation_id, email_hash(email), code).encode()
    ):
        return False
    site = row.conversation.site
    subject, body, from_email = _message(site, code)
    try:
        send_mail(subject, body, from_email, [email], fail_silently=False)
    except Exception as exc:  # SMTP refused or timed out: the visitor sees no code and asks again
        logger.warning("Could not send a chat email code (%s); the visitor can ask again", type(exc).__name__)
        return False
    return True


def _message(site: Site, code: str) -> tuple[str, str, str]:
    """Subject, plain-text body and sender of the code's email, in the business's own name."""
    name = " ".join(site.name.split())  # a display name on one line: no header tricks
    minutes = settings.CHAT_EMAIL_CODE_MINUTES
    subject = f"Your code for the {name} chat"
    body = (
        f"Hello,\n\n"
        f"you asked to confirm your email address in the chat on the {name} website.\n"
        f"Your code is:\n\n"
        f"    {code}\n\n"
        f"Type it into the chat within {minutes} minutes. It works once.\n\n"
        f"If you did not ask for it, ignore this email: nothing happens without the code.\n"
        f"Never tell this code to anyone; we will never ask you for it.\n\n"
        f"{name}\n"
    )
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1] or settings.DEFAULT_FROM_EMAIL
    return subject, body, formataddr((name, address))


def confirm_code(*, conversation: Conversation, email: str, code: str, now: datetime | None = None) -> Lead:
    """Check the code the visitor typed; on success the chat is verified for that address (see
    chatbot.services.verify_email) and the code is spent. A wrong code counts a try, and that
    count stays even though this raises ValidationError: call it outside any transaction."""
    now = now or timezone.now()
    code = "".join((code or "").split())  # "123 456" as read from the email
    if not CODE_RE.match(code):
        raise ValidationError({"code": "Type the 6 digits from the email."})
    address_hash = email_hash(email)
    error = ""
    lead: Lead | None = None
    with transaction.atomic():
        # The conversation's row lock serialises its tries: parallel guesses cannot skip the count.
        conversation = Conversation.objects.select_for_update(of=("self",)).get(pk=conversation.pk)
        row = (
            EmailCode.objects.filter(conversation=conversation, email_hash=address_hash)
            .order_by("-id")
            .first()
        )
        if conversation.identity_verified:
            error = USED if row is not None and row.used_at is not None else ALREADY
        elif row is None:
            error = NO_CODE
        elif row.used_at is not None:
            error = USED
        elif row.attempts >= MAX_ATTEMPTS:
            error = VOID
        elif row.expires_at <= now:
            error = EXPIRED
        elif not hmac.compare_digest(
            row.code_hash.encode(), _code_hash(conversation.pk, address_hash, code).encode()
        ):
            row.attempts += 1
            row.save(update_fields=["attempts"])
            left = MAX_ATTEMPTS - row.attempts
            error = (
                f"That code is not right: {left} {'try' if left == 1 else 'tries'} left." if left else VOID
            )
        else:
            row.used_at = now
            row.save(update_fields=["used_at"])
            lead = services.verify_email(conversation=conversation, email=email, now=now)
    if error or lead is None:
        raise ValidationError({"code": error})
    return lead


def purge_expired(*, now: datetime | None = None) -> int:
    """Delete codes past their expiry (used or not): they are personal data and prove nothing now."""
    deleted, _ = EmailCode.objects.filter(expires_at__lt=now or timezone.now()).delete()
    return deleted
