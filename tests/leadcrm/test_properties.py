"""Property tests for the free-form JSON fields: Lead.custom and Interaction.payload.

Any JSON a client can send (nested objects and lists, any unicode incl. NUL and lone surrogates,
huge and tiny numbers, deep nesting), through the API and through leadcrm.services, is either
stored and read back exactly (equal as JSON: 1e300 and 10**300 are the same JSON number) or refused
with a 400 / ValidationError that says why. Never a 500, never a silent change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from leadcrm import services
from leadcrm.models import Interaction, Lead
from tests.factories import make_lead, make_user

pytestmark = pytest.mark.django_db

# Text with any code point, NUL included; lone surrogate halves are valid JSON escapes ("\ud800")
# that a client can send; the services refuse them too (leadcrm.models.json_problem).
valid_texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\x00", "a\x00b", "😀", "\u202e", "null", "", "\uffff", "\U0010ffff"]),
)
any_texts = (
    valid_texts | st.text(st.characters(codec=None, exclude_categories=()), max_size=8) | st.just("\ud800")
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e300, -1e-300, 5e-324, 1.7976931348623157e308, -0.0, 2**63, -(2**63) - 1]),
)


def json_objects(texts: st.SearchStrategy[str]) -> st.SearchStrategy[dict]:
    values = st.recursive(
        st.none() | st.booleans() | numbers | texts,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
        max_leaves=12,
    )
    return st.dictionaries(texts, values, max_size=5)


client_json = json_objects(any_texts)
python_json = json_objects(valid_texts)

EXAMPLES = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def as_json(value: Any) -> Any:
    """The value as JSON means it: numbers compared exactly by their decimal value."""
    return json.loads(json.dumps(value), parse_float=Decimal, parse_int=Decimal)


def nested(depth: int) -> dict:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return {"deep": value}


def attempt(store: Callable[[], Any]) -> tuple[Any, dict | None]:
    """(what the service stored, None) or (None, its field errors); any other exception propagates."""
    try:
        return store(), None
    except ValidationError as exc:
        return None, exc.message_dict


def post_json(client: APIClient, url: str, body: str, method: str = "post") -> Any:
    return getattr(client, method)(url, body, content_type="application/json")


@pytest.fixture
def seller(db: None) -> Any:
    return make_user()


@pytest.fixture
def client(seller: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(seller)
    return client


def check_api_answer(response: Any, sent: Any, field: str) -> None:
    assert response.status_code < 500, response.content[:500]
    if response.status_code in (200, 201):
        returned = json.loads(response.content, parse_float=Decimal, parse_int=Decimal)[field]
        assert returned == as_json(sent), "stored something other than what was sent"
    else:
        assert response.status_code == 400, response.content[:500]
        errors = response.json()
        assert errors, "a 400 must say what is wrong"
        assert all(errors.values()), "a 400 must say what is wrong"


# --- Lead.custom -------------------------------------------------------------------------------


@EXAMPLES
@given(custom=client_json)
def test_custom_through_the_api_round_trips_or_is_refused(client: APIClient, custom: dict) -> None:
    body = json.dumps({"first_name": "Prop", "custom": custom})  # \u escapes, as any client sends
    created = post_json(client, "/api/v1/leads/", body)
    check_api_answer(created, custom, "custom")
    if created.status_code == 201:
        lead_id = created.json()["id"]
        assert as_json(Lead.objects.get(pk=lead_id).custom) == as_json(custom)
        again = client.get(f"/api/v1/leads/{lead_id}/")
        check_api_answer(again, custom, "custom")
        patched = post_json(client, f"/api/v1/leads/{lead_id}/", json.dumps({"custom": custom}), "patch")
        check_api_answer(patched, custom, "custom")


@EXAMPLES
@given(custom=python_json)
def test_custom_through_the_service_round_trips_or_is_refused(custom: dict) -> None:
    lead, refusal = attempt(lambda: services.create_lead(first_name="Prop", custom=custom))
    if refusal is not None:
        assert refusal.get("custom"), refusal
    else:
        assert as_json(Lead.objects.get(pk=lead.pk).custom) == as_json(custom)


@EXAMPLES
@given(custom=st.none() | st.booleans() | numbers | any_texts | st.lists(numbers, max_size=3))
def test_custom_that_is_not_an_object_is_refused(client: APIClient, custom: Any) -> None:
    response = post_json(client, "/api/v1/leads/", json.dumps({"first_name": "Prop", "custom": custom}))
    assert response.status_code == 400
    assert response.json()["custom"]


# --- Interaction.payload -----------------------------------------------------------------------


@EXAMPLES
@given(payload=client_json)
def test_payload_through_the_api_round_trips_or_is_refused(
    client: APIClient, seller: Any, payload: dict
) -> None:
    lead = make_lead(owner=seller)
    url = f"/api/v1/leads/{lead.pk}/interactions/"
    created = post_json(client, url, json.dumps({"kind": "page_view", "payload": payload}))
    check_api_answer(created, payload, "payload")
    if created.status_code == 201:
        stored = Interaction.objects.get(pk=created.json()["id"])
        assert as_json(stored.payload) == as_json(payload)
        listed = json.loads(client.get(url).content, parse_float=Decimal, parse_int=Decimal)
        assert listed["results"][0]["payload"] == as_json(payload)


@EXAMPLES
@given(payload=python_json)
def test_payload_through_the_service_round_trips_or_is_refused(payload: dict) -> None:
    lead = make_lead()
    interaction, refusal = attempt(
        lambda: services.record_interaction(lead=lead, kind="note", payload=payload)
    )
    if refusal is not None:
        assert refusal.get("payload"), refusal
    else:
        assert as_json(Interaction.objects.get(pk=interaction.pk).payload) == as_json(payload)


# --- Edges that random generation rarely reaches -----------------------------------------------


@pytest.mark.parametrize("depth", [1, 30, 200, 900, 3_000, 100_000])
def test_deep_nesting_round_trips_or_is_refused(client: APIClient, depth: int) -> None:
    custom = nested(depth)
    # Built by hand: Python's own json.dumps cannot write the deepest of these.
    body = '{"first_name": "Deep", "custom": {"deep": ' + "[" * depth + '"bottom"' + "]" * depth + "}}"
    response = post_json(client, "/api/v1/leads/", body)
    assert response.status_code in (201, 400), response.content[:300]
    if response.status_code == 201:
        assert Lead.objects.get(pk=response.json()["id"]).custom == custom
    else:
        assert response.json()


@pytest.mark.parametrize(
    "depth",
    [1, 30, 200, 900, 3_000],
)
def test_deep_nesting_through_the_service_round_trips_or_is_refused(depth: int) -> None:
    custom = nested(depth)
    lead, refusal = attempt(lambda: services.create_lead(first_name="Deep", custom=custom))
    if refusal is not None:
        assert refusal.get("custom"), refusal
    else:
        assert Lead.objects.get(pk=lead.pk).custom == custom


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_non_finite_numbers_are_refused_not_stored(client: APIClient, literal: str) -> None:
    body = '{"first_name": "Num", "custom": {"n": ' + literal + "}}"
    response = post_json(client, "/api/v1/leads/", body)
    assert response.status_code == 400, response.content[:300]
    assert not Lead.objects.filter(first_name="Num").exists()


@pytest.mark.parametrize("field", ["custom", "payload"])
def test_a_lone_surrogate_through_the_service_is_refused(field: str) -> None:
    value = {"note": "half of an emoji: \ud83d"}
    lead = make_lead()
    store = {
        "custom": lambda: services.create_lead(first_name="Prop", custom=value),
        "payload": lambda: services.record_interaction(lead=lead, kind="note", payload=value),
    }[field]
    with pytest.raises(ValidationError) as refused:
        store()
    assert refused.value.message_dict[field]
