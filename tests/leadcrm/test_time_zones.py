"""Times in the reader's zone (profile, else the browser's), always labelled; a lead's own time in theirs."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from leadcrm import services
from leadcrm.models import FollowUp, StaffProfile
from tests.factories import make_follow_up, make_lead

pytestmark = pytest.mark.django_db
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
TOKYO = zoneinfo.ZoneInfo("Asia/Tokyo")
PROFILE = reverse("accounts:profile")
FOLLOW_UPS = reverse("leadcrm:follow_ups")


@pytest.fixture
def seller_client(client, salesperson):
    client.force_login(salesperson)
    return client


def _due_in_a_week() -> datetime:
    return (timezone.now() + timedelta(days=7)).replace(hour=13, minute=5, second=0, microsecond=0)


def test_the_browser_zone_cookie_sets_the_zone_and_every_page_says_which(seller_client, salesperson) -> None:
    due = _due_in_a_week()
    make_follow_up(make_lead(owner=salesperson), due_at=due, assigned_to=salesperson)
    seller_client.cookies["tz"] = "Europe/Paris"
    html = seller_client.get(FOLLOW_UPS).content.decode()
    local = due.astimezone(PARIS)
    assert f"{local:%H:%M} {local.tzname()}" in html  # 14:05 CET (or 15:05 CEST)
    assert "Times in Europe/Paris" in html


def test_without_a_zone_times_are_utc_and_labelled_so(seller_client, salesperson) -> None:
    due = _due_in_a_week()
    make_follow_up(make_lead(owner=salesperson), due_at=due, assigned_to=salesperson)
    html = seller_client.get(FOLLOW_UPS).content.decode()
    assert "13:05 UTC" in html
    assert "Times in UTC" in html


@pytest.mark.parametrize("cookie", ["Mars/Olympus_Mons", "../../etc/passwd", "Europe/Paris\x00", "x" * 300])
def test_a_bad_zone_cookie_is_ignored(seller_client, cookie: str) -> None:
    seller_client.cookies["tz"] = cookie
    response = seller_client.get(FOLLOW_UPS)
    assert response.status_code == 200
    assert "Times in UTC" in response.content.decode()


def test_the_profile_zone_wins_over_the_browser(client, salesperson) -> None:
    services.update_staff_profile(user=salesperson, timezone="America/New_York")
    client.force_login(salesperson)
    client.cookies["tz"] = "Europe/Paris"
    assert "Times in America/New_York" in client.get(FOLLOW_UPS).content.decode()


def test_the_profile_page_sets_the_zone(seller_client, salesperson) -> None:
    page = seller_client.get(PROFILE)
    assert page.status_code == 200
    assert '<option value="Asia/Tokyo">Asia/Tokyo</option>' in page.content.decode()
    response = seller_client.post(PROFILE, {"timezone": "Asia/Tokyo"})
    assert response.status_code == 302
    assert StaffProfile.objects.get(user=salesperson).timezone == "Asia/Tokyo"
    assert "Times in Asia/Tokyo" in seller_client.get(FOLLOW_UPS).content.decode()
    # blank: back to the browser's zone
    seller_client.cookies["tz"] = "Europe/Paris"
    assert seller_client.post(PROFILE, {"timezone": ""}).status_code == 302
    assert "Times in Europe/Paris" in seller_client.get(FOLLOW_UPS).content.decode()


def test_the_profile_page_refuses_an_unknown_zone_on_the_page(seller_client, salesperson) -> None:
    response = seller_client.post(PROFILE, {"timezone": "Mars/Olympus_Mons"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "<html" in html
    assert "is not a time zone name" in html
    assert 'aria-describedby="id_timezone_helptext id_timezone-err"' in html
    assert not StaffProfile.objects.filter(user=salesperson, timezone="Mars/Olympus_Mons").exists()


def test_a_follow_up_time_typed_in_is_read_in_the_readers_zone(seller_client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    seller_client.cookies["tz"] = "Europe/Paris"
    year = timezone.now().year + 1
    response = seller_client.post(
        reverse("leadcrm:add_follow_up", args=[lead.pk]), {"due_at": f"{year}-01-10T09:00", "note": "Call"}
    )
    assert response.status_code == 302
    assert FollowUp.objects.get().due_at == datetime(year, 1, 10, 8, 0, tzinfo=UTC)


def test_their_time_is_the_leads_own_zone_labelled(seller_client, salesperson) -> None:
    lead = make_lead(owner=salesperson, timezone="Asia/Tokyo")
    seller_client.cookies["tz"] = "Europe/Paris"
    before = timezone.now()
    html = seller_client.get(reverse("leadcrm:lead", args=[lead.pk])).content.decode()
    after = timezone.now()
    shown = {f"{t.astimezone(TOKYO):%a %H:%M} their time (Asia/Tokyo, JST)" for t in (before, after)}
    assert any(text in html for text in shown), shown  # Tokyo's clock, not the reader's or UTC
    assert "Times in Europe/Paris" in html


def test_their_time_says_when_the_zone_is_unknown() -> None:
    html = Template("{% load times %}{% their_time zone now %}").render(
        Context({"zone": "", "now": datetime(2026, 1, 5, 9, 42, tzinfo=UTC)})
    )
    assert html == "their time zone is unknown"
    html = Template("{% load times %}{% their_time zone now %}").render(
        Context({"zone": "Europe/Paris", "now": datetime(2026, 1, 5, 9, 42, tzinfo=UTC)})
    )
    assert html == "Mon 10:42 their time (Europe/Paris, CET)"


def test_queue_rows_label_the_last_activity_time(seller_client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    services.record_interaction(lead=lead, kind="call", occurred_at=datetime(2026, 7, 1, 12, 0, tzinfo=UTC))
    seller_client.cookies["tz"] = "Europe/Paris"
    html = seller_client.get(reverse("leadcrm:queue"), HTTP_HX_REQUEST="true").content.decode()
    assert 'title="01 Jul 2026, 14:00 CEST"' in html


def test_the_profile_page_needs_a_login(client) -> None:
    response = client.get(PROFILE)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert client.post(PROFILE, {"timezone": "Asia/Tokyo"}).status_code == 302
    assert not StaffProfile.objects.exists()
