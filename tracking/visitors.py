"""Visitor ids that this server issued: a random part and its signature, bound to one site.

A browser cannot make one up, and an id of one site is worthless on another. The id fits the
chat's visitor id pattern ([A-Za-z0-9_-]{8,64}), so the chat widget carries the same id and a
conversation that gets its lead can link the visitor's earlier events (`tracking.services`).
"""

from __future__ import annotations

import base64
import hmac
import secrets

from django.utils.crypto import salted_hmac

PREFIX = "t"
RANDOM_CHARS = 22  # 16 random bytes, base64url
SIGNATURE_CHARS = 22  # the first 16 bytes of an HMAC-SHA256
LENGTH = len(PREFIX) + RANDOM_CHARS + SIGNATURE_CHARS


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _signature(site_id: int, random_part: str) -> str:
    mac = salted_hmac("leadcrm.tracking.visitor", f"{site_id}:{random_part}", algorithm="sha256")
    return _b64(mac.digest()[:16])


def issue_visitor_id(site_id: int) -> str:
    """A new visitor id for this site, signed by this server."""
    random_part = _b64(secrets.token_bytes(16))
    return PREFIX + random_part + _signature(site_id, random_part)


def is_issued(site_id: int, visitor_id: str) -> bool:
    """True if this server issued `visitor_id` for this site (compared in constant time)."""
    if not isinstance(visitor_id, str) or len(visitor_id) != LENGTH or not visitor_id.startswith(PREFIX):
        return False
    random_part = visitor_id[1 : 1 + RANDOM_CHARS]
    given = visitor_id[1 + RANDOM_CHARS :]
    try:
        return hmac.compare_digest(_signature(site_id, random_part).encode(), given.encode("ascii"))
    except UnicodeEncodeError:
        return False
