"""The API's error answers in the OpenAPI schema, for every operation, from how its view is built.

drf-spectacular documents what a view returns when all goes well. A client (and the schema fuzz
test, tests/test_openapi_fuzz.py) also needs the refusals: this AutoSchema adds them to every
operation, with one shared body, from what the view can actually answer:

  400  the operation takes a body or query parameters: field errors, or `detail`
  401  the view's first authentication class names a scheme (WWW-Authenticate)
  403  always: not allowed for this user or client (role, another person's lead, CSRF, site key/Origin)
  404  the path names a row, or the list is paginated (a page past the end)
  413  the operation takes a body (config.errors.too_large, over DATA_UPLOAD_MAX_MEMORY_SIZE)
  429  the view has throttles (with Retry-After)
  503  always: the database is away (config.errors.unavailable, with Retry-After)

A response the view documents itself (e.g. with @extend_schema) is kept; one without a body gets
the shared error body. Used through REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"].
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

ERROR = ResolvedComponent(
    name="Error",
    type=ResolvedComponent.SCHEMA,
    object="config.openapi.Error",
    schema={
        "type": "object",
        "description": "What went wrong, in a sentence a person can act on.",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
)
FIELD_ERRORS = ResolvedComponent(
    name="FieldErrors",
    type=ResolvedComponent.SCHEMA,
    object="config.openapi.FieldErrors",
    schema={
        "type": "object",
        "description": "Bad input: each refused field (or header) names its messages, e.g. "
        '{"email": ["Enter a valid email address."]}; `non_field_errors` for the request as a whole; '
        "`detail` for a body that could not be read. Nested fields nest the same way.",
        "minProperties": 1,
        "additionalProperties": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {}},
                {"type": "object"},
            ]
        },
    },
)
RETRY_AFTER = {
    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before trying again."}
}
WWW_AUTHENTICATE = {
    "WWW-Authenticate": {"schema": {"type": "string"}, "description": "The scheme to authenticate with."}
}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema plus the error responses each operation can answer."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        for component in (ERROR, FIELD_ERRORS):
            self.registry.register_on_missing(component)
        responses = operation.setdefault("responses", {})
        for code, (description, component, headers) in self.error_responses(operation).items():
            body = {"application/json": {"schema": component.ref}}
            existing = responses.get(code)
            if existing is None:
                responses[code] = {"description": description, "content": body, **headers}
            elif "content" not in existing:
                existing["content"] = body
        return operation

    def error_responses(self, operation: dict[str, Any]) -> dict[str, tuple[str, ResolvedComponent, dict]]:
        """Status code → (description, body, headers) of the refusals this operation can answer."""
        method = self.method.upper()
        has_body = method in BODY_METHODS
        query = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
        errors: dict[str, tuple[str, ResolvedComponent, dict]] = {}
        if has_body or query:
            errors["400"] = ("Bad input: field errors say what to change.", FIELD_ERRORS, {})
        if scheme := self._credentials_scheme():
            errors["401"] = (
                f"Not authenticated: log in, or send `Authorization: {scheme} …`.",
                ERROR,
                {"headers": WWW_AUTHENTICATE},
            )
        errors["403"] = (
            "Refused: not allowed for this user or client; `detail` says why.",
            ERROR,
            {},
        )
        if "{" in self.path or any(p.get("name") == "page" for p in query):
            errors["404"] = ("Not found, or not visible to you (or a page past the end).", ERROR, {})
        if has_body:
            errors["413"] = ("Request body over the size limit; `detail` gives the limit.", ERROR, {})
        if self._throttles():
            errors["429"] = (
                "Too many requests: wait for Retry-After seconds.",
                ERROR,
                {"headers": RETRY_AFTER},
            )
        errors["503"] = (
            "The database is briefly unavailable: try again after Retry-After seconds.",
            ERROR,
            {"headers": RETRY_AFTER},
        )
        return errors

    def _credentials_scheme(self) -> str:
        # DRF answers 401 only when its first authenticator names a scheme (WWW-Authenticate);
        # otherwise "not logged in" is a 403.
        authenticators = self.view.get_authenticators()
        header = authenticators[0].authenticate_header(self.view.request) if authenticators else None
        return header.split()[0] if header else ""  # 'Bearer realm="api"' → Bearer

    def _throttles(self) -> list:
        try:
            return list(self.view.get_throttles())
        except Exception:  # throttles chosen from the request itself (e.g. its site): the declared ones
            return list(self.view.throttle_classes)
