"""Signed values in email links and headers (django.core.signing, SECRET_KEY, one salt each).

- open pixel: the email's id; click link: the email's id and the target URL. The redirect target
  comes only from a value we signed: a changed or made-up link fails to unsign (400 page), so the
  click endpoint cannot be used as an open redirect.
- replies: `lc.<id>.<signature>` in the Message-ID (mail clients quote it in In-Reply-To and
  References) and in the Reply-To plus-address; an inbound message is matched by it, never by a
  number a sender chose.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing

OPEN_SALT = "outreach.open"
CLICK_SALT = "outreach.click"
REPLY_SALT = "outreach.reply"
REPLY_PREFIX = "lc."
REPLY_TOKEN_RE = re.compile(r"lc\.(\d{1,18}\.[A-Za-z0-9_-]{20,100})")


class BadToken(ValueError):
    """Tampered, made-up or expired."""


def _max_age() -> int:
    return int(settings.EMAIL_LINK_MAX_AGE_DAYS) * 86400


def open_token(email_id: int) -> str:
    return signing.dumps(email_id, salt=OPEN_SALT)


def read_open_token(token: str) -> int:
    try:
        value = signing.loads(token, salt=OPEN_SALT, max_age=_max_age())
    except (signing.BadSignature, ValueError, TypeError):
        raise BadToken("This tracking link is not valid.") from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadToken("This tracking link is not valid.")
    return value


def is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def click_token(email_id: int, url: str) -> str:
    return signing.dumps([email_id, url], salt=CLICK_SALT, compress=True)


def read_click_token(token: str) -> tuple[int, str]:
    try:
        value = signing.loads(token, salt=CLICK_SALT, max_age=_max_age())
    except (signing.BadSignature, ValueError, TypeError):
        raise BadToken("This link is not valid.") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or not isinstance(value[1], str)
        or not is_web_url(value[1])  # we only ever sign http(s) links; belt and braces
    ):
        raise BadToken("This link is not valid.")
    return value[0], value[1]


def _reply_signer() -> signing.Signer:
    return signing.Signer(salt=REPLY_SALT, sep=".")


def reply_token(email_id: int) -> str:
    """`lc.<id>.<signature>`: safe in a Message-ID and in an address's local part."""
    return REPLY_PREFIX + _reply_signer().sign(str(email_id))


def find_reply_email_id(*texts: str) -> int | None:
    """The first validly signed reply token in these header values (In-Reply-To, References, To)."""
    signer = _reply_signer()
    for text in texts:
        for match in REPLY_TOKEN_RE.finditer(text or ""):
            try:
                return int(signer.unsign(match.group(1)))
            except (signing.BadSignature, ValueError):
                continue
    return None
