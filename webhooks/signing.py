"""The delivery signature: `X-LeadCRM-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`.

The HMAC key is the webhook's secret; the message is f"{t}.{body}" (the exact bytes POSTed). A
receiver recomputes it, compares in constant time, and refuses a `t` older than a few minutes
(replay protection). docs/webhooks.md has a verification snippet.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-LeadCRM-Signature"
DEFAULT_TOLERANCE = 300  # seconds


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, now: int, tolerance: int = DEFAULT_TOLERANCE) -> bool:
    """What a receiver does (and what the demo receiver and the tests use)."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
