"""Properties of the chat's identity flow (Hypothesis): whatever a visitor types, a known lead's
fields, consent, owner and visitor id stay as they were; only the site's valid HMAC links."""

from __future__ import annotations

import contextlib

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatbot import services
from chatbot.models import Conversation, Site
from leadcrm.models import Consent, Lead
from tests.factories import make_user

pytestmark = pytest.mark.django_db

KNOWN_EMAIL = "kim@customer.example"
FIELDS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "owner_id",
    "visitor_id",
    "custom",
    "contact_consent",
    "contact_consent_at",
    "marketing_consent",
    "marketing_consent_at",
    "possible_duplicate_of_id",
)
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

typed_emails = st.one_of(
    st.just(KNOWN_EMAIL),
    st.sampled_from([KNOWN_EMAIL.upper(), f"  {KNOWN_EMAIL} ", "Kim@Customer.Example"]),
    st.emails(),
    st.text(max_size=60),
)
texts = st.text(max_size=60)


def _state(lead: Lead) -> dict:
    lead.refresh_from_db()
    return {f: getattr(lead, f) for f in FIELDS} | {"consents": Consent.objects.filter(lead=lead).count()}


@pytest.fixture
def world(db):
    site = Site.objects.create(name="Shop", allowed_origins=["https://shop.example"])
    owner = make_user("owner")
    known = Lead.objects.create(
        email=KNOWN_EMAIL,
        first_name="Kim",
        last_name="Customer",
        phone="+49 30 111111",
        owner=owner,
        visitor_id="victim-visitor-0001",
    )
    return site, known


@SETTINGS
@given(
    email=typed_emails,
    name=texts,
    phone=texts,
    contact=st.booleans(),
    marketing=st.booleans(),
    wrote=st.booleans(),
)
def test_identify_never_changes_a_known_lead(world, email, name, phone, contact, marketing, wrote) -> None:
    site, known = world
    before = _state(known)
    with transaction.atomic():
        conversation, _ = services.start_conversation(site=site, visitor_id=known.visitor_id)
        if wrote:
            services.post_visitor_message(conversation=conversation, text="hello")
        # Refused input is fine; what matters is that nothing of the known lead moved.
        with contextlib.suppress(ValidationError):
            services.identify_visitor(
                conversation=conversation,
                name=name,
                email=email,
                phone=phone,
                contact_consent=contact,
                marketing_consent=marketing,
            )
        assert _state(known) == before
        linked = Conversation.objects.get(pk=conversation.pk).lead_id
        assert linked != known.pk
        transaction.set_rollback(True)


@SETTINGS
@given(signature=st.one_of(st.text(max_size=80), st.from_regex(r"[0-9a-f]{64}", fullmatch=True)), name=texts)
def test_only_the_sites_valid_signature_links_to_the_known_lead(world, signature, name) -> None:
    site, known = world
    valid = site.identity_signature(KNOWN_EMAIL)
    with transaction.atomic():
        conversation, _ = services.start_conversation(
            site=site, identity_email=KNOWN_EMAIL, identity_name=name, identity_signature=signature
        )
        is_valid = signature.strip().lower() == valid
        assert conversation.identity_verified is is_valid
        assert (conversation.lead_id == known.pk) is is_valid
        if not is_valid:
            assert "Kim" not in conversation.messages.first().text
        transaction.set_rollback(True)
    assert (
        services.start_conversation(site=site, identity_email=KNOWN_EMAIL, identity_signature=valid)[
            0
        ].lead_id
        == known.pk
    )
