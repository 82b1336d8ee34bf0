"""DRF authentication with accounts.ApiToken: `Authorization: Bearer lcrm_…` (or `Token lcrm_…`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from accounts import throttle
from accounts.services import TokenRejected, check_token

KEYWORDS = (b"bearer", b"token")  # "Token" keeps clients written for the old scheme working


class ApiTokenAuthentication(BaseAuthentication):
    """Hashed, expiring, revocable tokens. A wrong, expired or revoked token is a 401 that says which."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None  # not ours: session authentication may still apply
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: send “Bearer <token>”, the token without spaces."
            )
        if throttle.token_failures_exceeded(request):
            raise exceptions.Throttled(
                wait=settings.API_TOKEN_FAILURE_WINDOW_SECONDS,
                detail="Too many invalid API tokens from your address. Check the token you send, then try again later.",
            )
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raw = ""
        try:
            token = check_token(raw)
        except TokenRejected as exc:
            throttle.note_token_failure(request)
            raise exceptions.AuthenticationFailed(str(exc)) from None
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # Present: unauthenticated requests answer 401 (with this challenge), not 403.
        return 'Bearer realm="api"'
