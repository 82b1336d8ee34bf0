"""A Site's own checks: allowed origins, signed visitor identity, business hours (no database)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from chatbot.models import Site, normalise_origin


def test_origins_compare_trimmed_without_trailing_slash_in_any_case() -> None:
    site = Site(allowed_origins=["https://www.Example.com/"])
    assert normalise_origin(" HTTPS://WWW.EXAMPLE.COM/ ") == "https://www.example.com"
    assert site.allows_origin("https://www.example.com")
    assert site.allows_origin("HTTPS://WWW.EXAMPLE.COM/")
    assert not site.allows_origin("https://evil.example")
    assert not site.allows_origin("https://www.example.com:8443")
    assert not site.allows_origin("")
    assert not site.allows_origin(None)


def test_identity_is_verified_only_with_this_sites_signature_of_the_email() -> None:
    site = Site(identity_secret="s3cret")
    signature = site.identity_signature(" Ada@Example.com")
    assert signature == hmac.new(b"s3cret", b"ada@example.com", hashlib.sha256).hexdigest()
    assert site.verify_identity("ada@example.com", signature)
    assert site.verify_identity("ADA@example.com", f" {signature.upper()} ")
    assert not site.verify_identity("eve@example.com", signature)
    assert not Site(identity_secret="another").verify_identity("ada@example.com", signature)
    assert not site.verify_identity("ada@example.com", "")
    assert not site.verify_identity("", signature)


def test_site_is_open_by_its_hours_in_its_own_time_zone() -> None:
    site = Site(timezone="Europe/Berlin", business_hours={"wed": [["09:00", "17:00"]]})
    assert site.is_open(datetime(2026, 1, 14, 8, 30, tzinfo=UTC))  # Wednesday 09:30 in Berlin
    assert not site.is_open(datetime(2026, 1, 14, 7, 30, tzinfo=UTC))  # 08:30 in Berlin
    assert not site.is_open(datetime(2026, 1, 14, 16, 0, tzinfo=UTC))  # 17:00: the end is excluded
    assert not site.is_open(datetime(2026, 1, 15, 8, 30, tzinfo=UTC))  # Thursday: closed
