"""API tokens: only a hash is stored, every token expires, owners and managers revoke, 401s explain."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import create_token, revoke_token
from tests.factories import make_manager, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def get_leads(api: APIClient, secret: str, keyword: str = "Bearer"):
    return api.get("/api/v1/leads/", HTTP_AUTHORIZATION=f"{keyword} {secret}")


# --- storage ------------------------------------------------------------------------------------


def test_only_a_hash_of_the_secret_is_stored(salesperson) -> None:
    new = create_token(user=salesperson, name="import script")
    assert new.secret.startswith(f"lcrm_{new.token.prefix}_")
    assert len(new.secret) > 50  # 256 random bits after the prefix

    token = ApiToken.objects.get()
    assert token.secret_hash == hashlib.sha256(new.secret.encode()).hexdigest()
    secret_part = new.secret.removeprefix(f"lcrm_{token.prefix}_")  # the 256 random bits
    with connection.cursor() as cursor:  # nothing in the row, in any column, contains the secret
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table}")
        row = " ".join(str(value) for value in cursor.fetchone())
    assert secret_part not in row
    assert new.secret not in row


def test_tokens_expire_after_the_default_days_or_the_chosen_ones(salesperson, settings) -> None:
    settings.API_TOKEN_DEFAULT_DAYS = 90
    now = timezone.now()
    default = create_token(user=salesperson, name="a", now=now).token
    assert default.expires_at == now + timedelta(days=90)
    assert create_token(user=salesperson, name="b", days=7, now=now).token.expires_at == now + timedelta(
        days=7
    )


@pytest.mark.parametrize("days", [0, -1, 366])
def test_a_token_cannot_live_forever_or_not_at_all(salesperson, days) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="expire within 1 to 365 days"):
        create_token(user=salesperson, name="forever", days=days)
    assert not ApiToken.objects.exists()


# --- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["Bearer", "Token", "bearer"])
def test_a_valid_token_authenticates_with_bearer_or_token(api, salesperson, keyword) -> None:
    new = create_token(user=salesperson, name="script")
    response = get_leads(api, new.secret, keyword)
    assert response.status_code == 200
    new.token.refresh_from_db()
    assert new.token.last_used_at is not None


def test_last_used_is_written_at_most_once_a_minute(api, salesperson) -> None:
    new = create_token(user=salesperson, name="script")
    assert get_leads(api, new.secret).status_code == 200
    first = ApiToken.objects.get().last_used_at
    assert get_leads(api, new.secret).status_code == 200
    assert ApiToken.objects.get().last_used_at == first  # no write within the minute

    ApiToken.objects.update(last_used_at=first - timedelta(seconds=61))
    assert get_leads(api, new.secret).status_code == 200
    assert ApiToken.objects.get().last_used_at > first


def test_an_expired_token_is_a_401_saying_so(api, salesperson) -> None:
    new = create_token(user=salesperson, name="script", days=1, now=timezone.now() - timedelta(days=2))
    response = get_leads(api, new.secret)
    assert response.status_code == 401
    assert "This API token expired on" in response.json()["detail"]
    assert "/account/tokens/" in response.json()["detail"]


def test_a_revoked_token_is_a_401_saying_so(api, salesperson) -> None:
    new = create_token(user=salesperson, name="script")
    revoke_token(token=new.token, by=salesperson)
    response = get_leads(api, new.secret)
    assert response.status_code == 401
    assert "This API token was revoked on" in response.json()["detail"]


def test_a_wrong_secret_with_a_real_prefix_is_just_invalid(api, salesperson) -> None:
    new = create_token(user=salesperson, name="script")
    forged = new.secret[:-4] + ("aaaa" if not new.secret.endswith("aaaa") else "bbbb")
    response = get_leads(api, forged)
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid API token."  # says nothing about the real token


def test_an_old_plain_text_token_is_told_to_make_a_new_one(api) -> None:
    response = get_leads(api, "0123456789abcdef0123456789abcdef01234567", "Token")
    assert response.status_code == 401
    assert "old format no longer work" in response.json()["detail"]


def test_a_malformed_header_and_no_header_are_401s(api) -> None:
    malformed = api.get("/api/v1/leads/", HTTP_AUTHORIZATION="Bearer two parts")
    assert malformed.status_code == 401
    assert "without spaces" in malformed.json()["detail"]
    anonymous = api.get("/api/v1/leads/")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")


def test_a_token_of_a_deactivated_user_stops_working(api, salesperson) -> None:
    new = create_token(user=salesperson, name="script")
    salesperson.is_active = False
    salesperson.save()
    response = get_leads(api, new.secret)
    assert response.status_code == 401
    assert "inactive" in response.json()["detail"]


# --- the tokens page ------------------------------------------------------------------------------


def test_a_user_creates_a_token_and_sees_the_secret_exactly_once(client, salesperson) -> None:
    client.force_login(salesperson)
    created = client.post("/account/tokens/", {"name": "Website form", "days": "30"})
    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"]  # no cache keeps the secret
    token = ApiToken.objects.get()
    page = created.content.decode()
    secret = page.split('id="new-token-secret" type="text" readonly value="', 1)[1].split('"', 1)[0]
    assert hashlib.sha256(secret.encode()).hexdigest() == token.secret_hash
    assert token.name == "Website form"
    assert token.user == salesperson
    assert (token.expires_at - token.created_at) == timedelta(days=30)

    later = client.get("/account/tokens/").content.decode()
    assert "Website form" in later
    assert secret not in later


def test_bad_input_on_the_page_is_explained(client, salesperson) -> None:
    client.force_login(salesperson)
    response = client.post("/account/tokens/", {"name": "", "days": "9999"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "This field is required." in page
    assert "expire within 365 days" in page
    assert not ApiToken.objects.exists()


def test_a_salesperson_sees_only_their_tokens_and_a_manager_sees_all(
    client, salesperson, other_salesperson
) -> None:
    create_token(user=salesperson, name="mine")
    create_token(user=other_salesperson, name="theirs")
    client.force_login(salesperson)
    page = client.get("/account/tokens/").content.decode()
    assert "mine" in page
    assert "theirs" not in page

    client.force_login(make_manager())
    page = client.get("/account/tokens/").content.decode()
    assert "mine" in page
    assert "theirs" in page


def test_the_owner_revokes_their_token(client, salesperson) -> None:
    token = create_token(user=salesperson, name="script").token
    client.force_login(salesperson)
    response = client.post(f"/account/tokens/{token.pk}/revoke/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "revoked: it no longer works" in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token.revoked_by == salesperson


def test_a_salesperson_cannot_revoke_another_users_token(client, salesperson, other_salesperson) -> None:
    theirs = create_token(user=other_salesperson, name="theirs").token
    client.force_login(salesperson)
    assert client.post(f"/account/tokens/{theirs.pk}/revoke/").status_code == 404  # ids do not leak
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_a_manager_revokes_anyones_token(client, salesperson, api) -> None:
    new = create_token(user=salesperson, name="leaked")
    boss = make_manager()
    client.force_login(boss)
    response = client.post(f"/account/tokens/{new.token.pk}/revoke/")
    assert response.status_code == 302
    new.token.refresh_from_db()
    assert new.token.revoked_by == boss
    assert get_leads(api, new.secret).status_code == 401


def test_the_tokens_page_needs_a_login(client) -> None:
    response = client.get("/account/tokens/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


# --- command and admin ----------------------------------------------------------------------------


def test_the_command_prints_a_working_secret(api, salesperson) -> None:
    out, err = StringIO(), StringIO()
    call_command(
        "create_api_token",
        salesperson.username,
        "--name",
        "cron import",
        "--days",
        "10",
        stdout=out,
        stderr=err,
    )
    secret = out.getvalue().strip()
    assert get_leads(api, secret).status_code == 200
    assert "not shown again" in err.getvalue()
    token = ApiToken.objects.get()
    assert token.expires_at - token.created_at == timedelta(days=10)


def test_the_command_refuses_bad_input_plainly(salesperson) -> None:
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("create_api_token", "nobody", "--name", "x")
    with pytest.raises(CommandError, match="expire within"):
        call_command("create_api_token", salesperson.username, "--name", "x", "--days", "0")
    assert not ApiToken.objects.exists()


def test_the_admin_lists_tokens_without_their_hash_and_revokes(client, salesperson) -> None:
    new = create_token(user=salesperson, name="script")
    boss = make_manager(is_staff=True)
    client.force_login(boss)
    listing = client.get("/admin/accounts/apitoken/")
    assert listing.status_code == 200
    assert "script" in listing.content.decode()
    detail = client.get(f"/admin/accounts/apitoken/{new.token.pk}/change/").content.decode()
    assert new.token.secret_hash not in detail
    assert 'name="secret_hash"' not in detail
    assert client.get("/admin/accounts/apitoken/add/").status_code == 403

    client.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke_selected", "_selected_action": [new.token.pk]},
    )
    new.token.refresh_from_db()
    assert new.token.revoked_by == boss


def test_a_user_without_a_crm_role_still_reaches_their_own_tokens(client) -> None:
    user = make_user(role=None)
    client.force_login(user)
    assert client.get("/account/tokens/").status_code == 200
