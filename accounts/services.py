"""Create, check and revoke API tokens. The only writer of ApiToken rows."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiToken

TOKEN_PREFIX = "lcrm_"
PREFIX_HEX_CHARS = 10  # 40 bits: a unique, non-secret handle for the lookup
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is written at most once a minute per token


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # the full token string; shown once, never stored


class TokenRejected(Exception):
    """The presented token is not valid; the message says why and what to do."""


def hash_secret(secret: str) -> str:
    # A fast hash is right here: the secret has 256 random bits, nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(*, user: User, name: str, days: int | None = None, now: datetime | None = None) -> NewToken:
    """A new token for `user`, valid for `days` (default API_TOKEN_DEFAULT_DAYS); returns the secret once."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the token a name that says what it is for."})
    if len(name) > ApiToken._meta.get_field("name").max_length:  # type: ignore[operator]
        raise ValidationError({"name": "Keep the name under 100 characters."})
    days = settings.API_TOKEN_DEFAULT_DAYS if days is None else days
    if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        raise ValidationError(
            {"days": f"A token must expire within 1 to {settings.API_TOKEN_MAX_DAYS} days."}
        )
    if not user.is_active:
        raise ValidationError("This user is inactive; activate the account before creating a token.")
    now = now or timezone.now()
    for _ in range(5):  # a prefix collision is a 1-in-a-trillion event; try again rather than fail
        prefix = secrets.token_hex(PREFIX_HEX_CHARS // 2)
        secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user,
                    name=name,
                    prefix=prefix,
                    secret_hash=hash_secret(secret),
                    created_at=now,
                    expires_at=now + timedelta(days=days),
                )
        except IntegrityError:
            continue
        return NewToken(token=token, secret=secret)
    raise RuntimeError("Could not find a free token prefix")


def revoke_token(*, token: ApiToken, by: User, now: datetime | None = None) -> bool:
    """Revoke `token` (idempotent). True if this call revoked it. Callers check who may."""
    now = now or timezone.now()
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=now, revoked_by=by
    )
    token.refresh_from_db(fields=["revoked_at", "revoked_by"])
    return bool(updated)


def check_token(raw: str, *, now: datetime | None = None) -> ApiToken:
    """The active token `raw` names, with its user; TokenRejected with a plain reason otherwise."""
    now = now or timezone.now()
    if not raw.startswith(TOKEN_PREFIX):
        if len(raw) == 40 and all(c in "0123456789abcdef" for c in raw):
            raise TokenRejected(
                "Tokens of the old format no longer work. Create a new token at /account/tokens/."
            )
        raise TokenRejected("Invalid API token.")
    prefix = raw[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + PREFIX_HEX_CHARS]
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    # Compare the hash even for an unknown prefix, so timing tells nothing about which prefixes exist.
    expected = token.secret_hash if token is not None else "0" * 64
    if not hmac.compare_digest(expected, hash_secret(raw)) or token is None:
        raise TokenRejected("Invalid API token.")
    if token.revoked_at is not None:
        raise TokenRejected(
            f"This API token was revoked on {token.revoked_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC. "
            "Create a new token at /account/tokens/."
        )
    if token.expires_at <= now:
        raise TokenRejected(
            f"This API token expired on {token.expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC. "
            "Create a new token at /account/tokens/."
        )
    if not token.user.is_active:
        raise TokenRejected("The account this token belongs to is inactive.")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        # At most one write a minute per token, however busy the integration is.
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token
