"""Chat sites and FAQ through the managers' API: the model's validation, the secret shown once."""

from __future__ import annotations

import pytest

from chatbot.faq import best_faq
from chatbot.models import FaqEntry, Site

pytestmark = pytest.mark.django_db


def test_the_identity_secret_is_shown_once_at_creation_and_never_read_again(as_user, manager) -> None:
    client = as_user(manager)
    created = client.post(
        "/api/v1/sites/", {"name": "Shop", "allowed_origins": ["https://Shop.example/"]}, format="json"
    )
    assert created.status_code == 201, created.content
    site = Site.objects.get(pk=created.json()["id"])
    assert created.json()["identity_secret"] == site.identity_secret
    assert site.allowed_origins == ["https://shop.example"]
    for response in (client.get(f"/api/v1/sites/{site.pk}/"), client.get("/api/v1/sites/")):
        assert site.identity_secret not in response.content.decode()
    read = client.get(f"/api/v1/sites/{site.pk}/").json()
    assert "identity_secret" not in read
    assert read["identity_secret_hint"] == "…" + site.identity_secret[-4:]
    patched = client.patch(f"/api/v1/sites/{site.pk}/", {"name": "Shop 2"}, format="json")
    assert site.identity_secret not in patched.content.decode()


def test_the_secret_cannot_be_written_and_rotating_it_shows_the_new_one_once(as_user, manager) -> None:
    site = Site.objects.create(name="Shop")
    old = site.identity_secret
    client = as_user(manager)
    written = client.patch(f"/api/v1/sites/{site.pk}/", {"identity_secret": "guessable"}, format="json")
    assert written.status_code == 400
    assert "identity_secret" in written.json()
    rotated = client.post(f"/api/v1/sites/{site.pk}/rotate-secret/")
    site.refresh_from_db()
    assert site.identity_secret != old
    assert rotated.json()["identity_secret"] == site.identity_secret
    assert site.identity_secret not in client.get(f"/api/v1/sites/{site.pk}/").content.decode()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"allowed_origins": ["shop.example"]}, "allowed_origins"),
        ({"allowed_origins": ["https://shop.example/path"]}, "allowed_origins"),
        ({"allowed_origins": ["javascript://x"]}, "allowed_origins"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"brand_color": "red"}, "brand_color"),
        ({"business_hours": {"mon": [["17:00", "09:00"]]}}, "business_hours"),
        ({"business_hours": {"funday": []}}, "business_hours"),
        ({"greetings": {"morning": {"text": "hi"}}}, "greetings"),
        ({"greetings": {"brunch": "hi"}}, "greetings"),
        ({"faq_threshold": 2}, "faq_threshold"),
        ({"public_key": "pk_mine"}, "public_key"),
    ],
)
def test_site_validation_is_the_admins_and_more(as_user, manager, change, field) -> None:
    site = Site.objects.create(name="Shop")
    response = as_user(manager).patch(f"/api/v1/sites/{site.pk}/", change, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_an_faq_entry_saved_through_the_api_is_answered_at_once(as_user, manager) -> None:
    site = Site.objects.create(name="Shop")
    best_faq(site, "warm up the matcher")
    response = as_user(manager).post(
        "/api/v1/faq-entries/",
        {"site": site.pk, "question": "Do you deliver on Sundays?", "answer": "Yes, until noon."},
        format="json",
    )
    assert response.status_code == 201
    hit = best_faq(site, "do you deliver on sundays")
    assert hit is not None
    assert hit.answer == "Yes, until noon."


def test_faq_filters_and_validation(as_user, manager) -> None:
    shop, blog = Site.objects.create(name="Shop"), Site.objects.create(name="Blog")
    entry = FaqEntry.objects.create(site=shop, question="Hours?", answer="9-5")
    FaqEntry.objects.create(site=blog, question="Who?", answer="Us")
    client = as_user(manager)
    assert [r["id"] for r in client.get("/api/v1/faq-entries/", {"site": shop.pk}).json()["results"]] == [
        entry.pk
    ]
    bad = client.post("/api/v1/faq-entries/", {"site": shop.pk, "question": "", "answer": "x"}, format="json")
    assert bad.status_code == 400
    assert "question" in bad.json()
