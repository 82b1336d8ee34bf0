"""The login throttle: a few wrong passwords lock one username from one address, for a while."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client

from accounts.services import create_token
from tests.factories import make_user

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"


def attempt(client: Client, username: str, password: str, ip: str = "198.51.100.7", **headers: str):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip, **headers)


def fail_until_locked(client: Client, username: str, ip: str = "198.51.100.7", **headers: str) -> None:
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        attempt(client, username, "wrong", ip, **headers)


def test_after_a_few_wrong_passwords_even_the_right_one_is_refused_with_a_clear_message(client) -> None:
    make_user("sam")
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        response = attempt(client, "sam", "wrong")
        assert response.status_code == 200
        assert "didn't match" in response.content.decode()

    locked = attempt(client, "sam", "wrong")
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == settings.LOGIN_COOLOFF_MINUTES * 60

    right_password = attempt(client, "sam", PASSWORD)
    assert right_password.status_code == 429  # no 41st guess, not even a correct one
    assert "_auth_user_id" not in client.session
    page = right_password.content.decode()
    assert "Too many failed attempts" in page
    assert f"for {settings.LOGIN_COOLOFF_MINUTES} minutes" in page
    assert "manager to unlock you now" in page  # what to do next
    assert 'name="password"' in page  # still the login page, with its form


def test_the_lock_holds_only_for_that_username_from_that_address(client) -> None:
    make_user("sam")
    make_user("kim")
    fail_until_locked(client, "sam", ip="198.51.100.7")

    # The attacker's address cannot lock the real user out at their own desk…
    assert attempt(Client(), "sam", PASSWORD, ip="203.0.113.20").status_code == 302
    # …nor lock every other user out from that address.
    assert attempt(Client(), "kim", PASSWORD, ip="198.51.100.7").status_code == 302
    assert attempt(Client(), "sam", PASSWORD, ip="198.51.100.7").status_code == 429


def test_the_lock_lifts_by_itself_after_the_cool_off(client) -> None:
    make_user("sam")
    fail_until_locked(client, "sam")
    assert attempt(client, "sam", PASSWORD).status_code == 429

    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time
        - timedelta(minutes=settings.LOGIN_COOLOFF_MINUTES, seconds=1)
    )
    assert attempt(client, "sam", PASSWORD).status_code == 302


def test_the_cool_off_is_a_setting(client, settings) -> None:
    settings.AXES_COOLOFF_TIME = timedelta(minutes=60)  # what LOGIN_COOLOFF_MINUTES=60 sets
    make_user("sam")
    fail_until_locked(client, "sam")
    locked = attempt(client, "sam", PASSWORD)
    assert locked.status_code == 429
    assert "for 60 minutes" in locked.content.decode()


def test_a_made_up_forwarded_for_header_does_not_give_a_fresh_address(client) -> None:
    make_user("sam")
    for i in range(settings.LOGIN_FAILURE_LIMIT):
        attempt(client, "sam", "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    # With no trusted proxy (the default) the socket address counts, whatever the header says.
    assert attempt(client, "sam", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.7"}


def test_behind_a_trusted_proxy_the_forwarded_address_counts(client, settings) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    make_user("sam")
    proxy = "10.0.0.2"
    fail_until_locked(client, "sam", ip=proxy, HTTP_X_FORWARDED_FOR="192.0.2.10")
    assert attempt(client, "sam", PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="192.0.2.10").status_code == 429
    # Another visitor behind the same proxy is a different address.
    assert attempt(Client(), "sam", PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="192.0.2.11").status_code == 302


def test_a_successful_login_starts_the_count_again(client) -> None:
    make_user("sam")
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        attempt(client, "sam", "wrong")
    assert attempt(client, "sam", PASSWORD).status_code == 302
    client.post("/logout/")
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        attempt(client, "sam", "wrong")
    assert attempt(client, "sam", PASSWORD).status_code == 302


def test_bad_api_tokens_from_one_address_are_throttled(client, settings) -> None:
    settings.API_TOKEN_FAILURE_LIMIT = 3
    good = create_token(user=make_user("sam"), name="script").secret

    def api(token: str, ip: str = "198.51.100.7"):
        return client.get("/api/v1/leads/", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=ip)

    for i in range(3):
        assert api(f"lcrm_{i:010d}_guess").status_code == 401
    throttled = api(good)  # while throttled, the address gets no more answers, good or bad
    assert throttled.status_code == 429
    assert "Too many invalid API tokens" in throttled.json()["detail"]
    assert int(throttled["Retry-After"]) > 0
    assert api(good, ip="203.0.113.20").status_code == 200  # other addresses are unaffected
