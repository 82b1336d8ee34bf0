"""Schemathesis over the whole OpenAPI schema, in-process (WSGI), as a salesperson and as a manager.

Every operation the schema lists gets generated requests (valid and invalid) and each answer is
checked: no 5xx, a documented status code, the documented content type, and a body that matches
the documented schema (success and error answers alike). Examples are bounded and derandomized so
the module is fast and gives the same result on every run.
"""

from __future__ import annotations

import json
import secrets
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.conf import settings
from django.core import signals
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chatbot.api import TOKEN_HEADER
from chatbot.models import Conversation, Site
from config.wsgi import application
from tests.factories import make_lead, make_manager, make_user

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ORIGIN = "https://shop.example"


def served_schema() -> dict[str, Any]:
    """The schema /api/v1/schema/ serves (same generator, same settings), as plain JSON."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(json.dumps(schema, cls=DjangoJSONEncoder))


schema = schemathesis.openapi.from_dict(served_schema())
schema.app = application
# The test logs in with a real session (below); made-up tokens or session ids are not what we test.
schema.config.generation.update(with_security_parameters=False)
# The coverage phase sends every boundary case of every field (about a thousand requests for a
# lead PATCH): far over the time budget. Bounded random examples, positive and negative, instead.
schema.config.phases.coverage.enabled = False


@pytest.fixture
def in_test_transaction() -> Iterator[None]:
    """The WSGI app runs in this thread on the test's connection: keep Django from closing it
    between requests (the test client does the same)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    cache.clear()  # rate-limit counters of an earlier run must not answer 429 here
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture(params=["salesperson", "manager"])
def world(request: pytest.FixtureRequest, db: None, in_test_transaction: None) -> dict[str, Any]:
    """A logged-in user of the given role, leads of every kind of ownership, a chat site and chat."""
    user = make_user() if request.param == "salesperson" else make_manager()
    rival = make_user()
    own = make_lead(owner=user, custom={"plan": "pro"})
    unassigned = make_lead()
    theirs = make_lead(owner=rival)
    site = Site.objects.create(name="Shop", allowed_origins=[ORIGIN])
    visitor = make_lead(email="visitor@shop.example", contact_consent=True)  # identified: sees "me/"
    conversation = Conversation.objects.create(site=site, visitor_id="v-1", lead=visitor, lead_created=True)
    client = Client()
    client.force_login(user)
    csrf = secrets.token_hex(16)  # a 32-character secret: the cookie and header CSRF compares
    return {
        "lead_ids": [own.pk, unassigned.pk, theirs.pk],
        "key": site.public_key,
        "token": conversation.token,
        "cookies": {
            settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value,
            settings.CSRF_COOKIE_NAME: csrf,
        },
        "headers": {"X-CSRFToken": csrf},
    }


def aim(case: Any, world: dict[str, Any]) -> None:
    """Point most generated path ids at real rows, so requests reach past the 404.

    Which one is derived from the generated value, so Hypothesis still explores (and shrinks) it;
    a few are left as generated, to exercise the 404s."""
    params = dict(case.path_parameters or {})
    if "id" in params and stable_hash(params["id"]) % 4 != 3:
        params["id"] = world["lead_ids"][stable_hash(params["id"]) % 3]
    if "key" in params and stable_hash(params["key"]) % 4 != 3:
        params["key"] = world["key"]
    case.path_parameters = params
    headers = dict(case.headers or {})
    declared = any(p.name == TOKEN_HEADER for p in case.operation.headers)
    if TOKEN_HEADER in headers and stable_hash(headers[TOKEN_HEADER]) % 4 != 3:
        headers[TOKEN_HEADER] = world["token"]  # the chat conversation's credential
    elif "/chat/" in case.path and not declared:
        headers[TOKEN_HEADER] = world["token"]  # an operation that needs it without saying so
    case.headers = headers


def stable_hash(value: object) -> int:
    """The same number for the same generated value on every run (str hashes are salted)."""
    return zlib.crc32(repr(value).encode())


@schema.parametrize()
@hypothesis_settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: Any, world: dict[str, Any]) -> None:
    aim(case, world)
    headers = dict(world["headers"])
    if "/chat/" in case.path:
        headers["Origin"] = ORIGIN  # the widget's page; the API's own callers send none
    response = case.call(headers=headers, cookies=world["cookies"])
    case.validate_response(response, checks=CHECKS)
