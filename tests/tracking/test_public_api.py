"""The snippet's public endpoints: site key + Origin, consent modes, Do-Not-Track, validation, limits."""

from __future__ import annotations

import pytest

from chatbot.models import Site
from tests.tracking.conftest import ORIGIN, page_view, send, visitor
from tracking import services
from tracking.models import TrackedEvent, TrackingMode
from tracking.visitors import is_issued, issue_visitor_id

pytestmark = pytest.mark.django_db


def config(client, site, **headers):
    return client.get(f"/api/v1/track/sites/{site.public_key}/config", HTTP_ORIGIN=ORIGIN, **headers)


def test_config_gives_the_mode_and_a_visitor_id_this_server_signed_for_this_site(client, site) -> None:
    body = config(client, site).json()
    assert body["mode"] == "anonymous"
    assert body["do_not_track"] is False
    assert is_issued(site.pk, body["visitor_id"])
    other = Site.objects.create(name="Other", allowed_origins=[ORIGIN])
    assert not is_issued(other.pk, body["visitor_id"])  # worthless on another site
    assert not is_issued(site.pk, body["visitor_id"][:-1] + ("A" if body["visitor_id"][-1] != "A" else "B"))


def test_config_under_do_not_track_says_so_and_issues_no_id(client, site) -> None:
    body = config(client, site, HTTP_DNT="1").json()
    assert body == {"mode": "anonymous", "do_not_track": True, "visitor_id": ""}
    assert config(client, site, HTTP_SEC_GPC="1").json()["do_not_track"] is True


def test_unknown_key_or_origin_is_refused_without_cors_headers(client, site) -> None:
    vid = visitor(site)
    body = {"visitor_id": vid, "consent": True, "events": [page_view()]}
    evil = send(client, site, body, origin="https://evil.example")
    assert evil.status_code == 403
    assert "Access-Control-Allow-Origin" not in evil
    assert send(client, site, body, origin="").status_code == 403
    site.public_key = "pk_gone"
    assert send(client, site, body).status_code == 403
    assert TrackedEvent.objects.count() == 0


def test_preflight_and_answers_carry_cors_for_the_allowed_origin(client, site) -> None:
    pre = client.options(f"/api/v1/track/sites/{site.public_key}/events", HTTP_ORIGIN=ORIGIN)
    assert pre.status_code == 204
    assert pre["Access-Control-Allow-Origin"] == ORIGIN
    ok = send(client, site, {"events": [page_view()]})
    assert ok.status_code == 200
    assert ok["Access-Control-Allow-Origin"] == ORIGIN
    assert client.get(f"/api/v1/track/sites/{site.public_key}/events", HTTP_ORIGIN=ORIGIN).status_code == 405


def test_anonymous_mode_before_consent_keeps_no_visitor_id_even_if_one_is_sent(client, site) -> None:
    response = send(client, site, {"visitor_id": visitor(site), "consent": False, "events": [page_view()]})
    assert response.json() == {"stored": 1, "duplicates": 0}
    assert list(TrackedEvent.objects.values_list("visitor_id", flat=True)) == [""]


def test_after_consent_mode_refuses_events_without_consent_and_takes_them_with_it(client, site) -> None:
    services.set_tracking_mode(site=site, mode=TrackingMode.AFTER_CONSENT)
    vid = visitor(site)
    refused = send(client, site, {"visitor_id": vid, "events": [page_view()]})
    assert refused.status_code == 403
    assert "consent" in refused.json()["detail"]
    assert TrackedEvent.objects.count() == 0
    assert (
        send(client, site, {"visitor_id": vid, "consent": True, "events": [page_view()]}).status_code == 200
    )
    assert list(TrackedEvent.objects.values_list("visitor_id", flat=True)) == [vid]


def test_tracking_off_refuses_everything(client, site) -> None:
    services.set_tracking_mode(site=site, mode=TrackingMode.OFF)
    response = send(client, site, {"visitor_id": visitor(site), "consent": True, "events": [page_view()]})
    assert response.status_code == 403
    assert config(client, site).json() == {"mode": "off", "do_not_track": False, "visitor_id": ""}


@pytest.mark.parametrize("header", [{"HTTP_DNT": "1"}, {"HTTP_SEC_GPC": "1"}])
def test_do_not_track_stores_nothing_and_says_why(client, site, header) -> None:
    response = send(
        client, site, {"visitor_id": visitor(site), "consent": True, "events": [page_view()]}, **header
    )
    assert response.json() == {"stored": 0, "duplicates": 0, "ignored": "Do-Not-Track"}
    assert TrackedEvent.objects.count() == 0


def test_a_visitor_id_the_server_did_not_issue_is_refused(client, site) -> None:
    other = Site.objects.create(name="Other", allowed_origins=[ORIGIN])
    for made_up in ("visitor-test-0001", "t" + "A" * 44, issue_visitor_id(other.pk)):
        response = send(client, site, {"visitor_id": made_up, "consent": True, "events": [page_view()]})
        assert response.status_code == 400, made_up
        assert "not issued" in response.json()["detail"]
    assert TrackedEvent.objects.count() == 0


def test_page_view_keeps_url_title_referrer_and_utm_but_no_query_string(client, site) -> None:
    vid = visitor(site)
    event = page_view(
        url="https://shop.example/pricing?email=ada@example.com&utm_source=news&utm_campaign=spring#top",
        referrer="https://search.example/?q=ada+lovelace",
    )
    send(client, site, {"visitor_id": vid, "consent": True, "events": [event]})
    stored = TrackedEvent.objects.get()
    assert stored.payload == {
        "url": "https://shop.example/pricing",
        "via": "tracking",
        "title": "Pricing",
        "referrer": "https://search.example/",
        "utm_source": "news",
        "utm_campaign": "spring",
    }


def test_every_event_type_is_stored(client, site) -> None:
    vid = visitor(site)
    pv = page_view()
    events = [
        pv,
        {"id": "form0001", "type": "form_submit", "url": "https://shop.example/contact", "form": "contact"},
        {
            "id": "down0001",
            "type": "download",
            "url": "https://shop.example/",
            "file": "https://shop.example/menu.pdf",
        },
        {
            "id": "cust0001",
            "type": "custom",
            "url": "https://shop.example/",
            "name": "signup",
            "props": {"plan": "pro"},
        },
        {"id": "time0001", "type": "time_on_page", "page_id": pv["id"], "seconds": 42},
    ]
    response = send(client, site, {"visitor_id": vid, "consent": True, "events": events})
    assert response.json() == {"stored": 5, "duplicates": 0}
    payloads = dict(TrackedEvent.objects.values_list("event_id", "payload"))
    assert payloads["form0001"]["form"] == "contact"
    assert payloads["down0001"]["file"] == "https://shop.example/menu.pdf"
    assert payloads["cust0001"]["event"] == "signup"
    assert payloads["cust0001"]["props"] == {"plan": "pro"}
    assert payloads["time0001"] == {"page_id": pv["id"], "seconds": 42}


def test_a_resent_event_is_stored_once(client, site) -> None:
    vid = visitor(site)
    body = {"visitor_id": vid, "consent": True, "events": [page_view()]}
    assert send(client, site, body).json() == {"stored": 1, "duplicates": 0}
    assert send(client, site, body).json() == {"stored": 0, "duplicates": 1}
    assert TrackedEvent.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "JSON object"),
        ('{"events": "x"}', "events list"),
        ({"events": []}, "1 to 20"),
        ({"events": [page_view() for _ in range(21)]}, "1 to 20"),
        ({"consent": "yes", "events": [page_view()]}, "consent is true or false"),
        ({"events": [{"id": "short", "type": "page_view", "url": "https://a.example/"}]}, "id must be"),
        ({"events": [{"id": "abcdefgh1", "type": "hover", "url": "https://a.example/"}]}, "type must be"),
        ({"events": [{"id": "abcdefgh1", "type": "page_view", "url": "javascript:alert(1)"}]}, "http"),
        ({"events": [{"id": "abcdefgh1", "type": "page_view"}]}, "url is required"),
        (
            {"events": [{"id": "abcdefgh1", "type": "page_view", "url": "https://a.example/", "title": 5}]},
            "text",
        ),
        (
            {
                "events": [
                    {"id": "abcdefgh1", "type": "page_view", "url": "https://a.example/", "title": "a\u0000"}
                ]
            },
            "NUL",
        ),
        (
            {"events": [{"id": "abcdefgh1", "type": "page_view", "url": "https://a.example/", "at": "soon"}]},
            "milliseconds",
        ),
        (
            {"events": [{"id": "abcdefgh1", "type": "page_view", "url": "https://a.example/", "at": 1e300}]},
            "range",
        ),
        (
            {"events": [{"id": "abcdefgh1", "type": "custom", "url": "https://a.example/", "name": "<b>"}]},
            "name",
        ),
        (
            {
                "events": [
                    {
                        "id": "abcdefgh1",
                        "type": "custom",
                        "url": "https://a.example/",
                        "name": "x",
                        "props": {"a": "\ud800"},
                    }
                ]
            },
            "surrogate",
        ),
        (
            {
                "events": [
                    {
                        "id": "abcdefgh1",
                        "type": "custom",
                        "url": "https://a.example/",
                        "name": "x",
                        "props": {"a": "x" * 3000},
                    }
                ]
            },
            "2000",
        ),
        (
            {"events": [{"id": "abcdefgh1", "type": "time_on_page", "page_id": "abcdefgh2", "seconds": -1}]},
            "seconds",
        ),
        (
            {
                "events": [
                    {"id": "abcdefgh1", "type": "time_on_page", "page_id": "abcdefgh2", "seconds": True}
                ]
            },
            "seconds",
        ),
        ({"events": [page_view(id="abcdefgh1"), page_view(id="abcdefgh1")]}, "own id"),
        ({"chat_token": 5, "visitor_id": "", "events": [page_view()]}, "chat_token"),
    ],
)
def test_bad_input_is_a_clear_400_and_stores_nothing(client, site, body, message) -> None:
    response = send(client, site, body)
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]
    assert TrackedEvent.objects.count() == 0


def test_a_body_over_32_kb_is_refused_with_413(client, site) -> None:
    response = send(client, site, {"events": [page_view(title="x" * 40_000)]})
    assert response.status_code == 413
    assert TrackedEvent.objects.count() == 0


def test_a_browser_clock_is_trusted_within_a_day_never_in_the_future(client, site) -> None:
    import time

    now_ms = time.time() * 1000
    events = [
        page_view(at=now_ms - 3_600_000),  # an hour ago: kept
        page_view(at=now_ms + 86_400_000),  # tomorrow: server time
        page_view(at=0),  # 1970: server time
    ]
    send(client, site, {"events": events})
    times = dict(TrackedEvent.objects.values_list("event_id", "occurred_at"))
    received = TrackedEvent.objects.first().received_at
    assert (received - times[events[0]["id"]]).total_seconds() == pytest.approx(3600, abs=5)
    assert times[events[1]["id"]] == received
    assert times[events[2]["id"]] == received


def test_per_ip_and_per_site_limits_answer_429_with_retry_after(client, site, settings) -> None:
    settings.TRACKING_RATES = {"ip_minute": 3, "site_minute": 1000}
    codes = [send(client, site, {"events": [page_view()]}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = send(client, site, {"events": [page_view()]})
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert TrackedEvent.objects.count() == 3
    settings.TRACKING_RATES = {"ip_minute": 1000, "site_minute": 5}
    assert send(client, site, {"events": [page_view()]}).status_code == 429  # the site's 6th this minute


def test_sendbeacon_text_plain_and_json_bodies_are_both_read(client, site) -> None:
    assert (
        send(client, site, {"events": [page_view()]}, content_type="text/plain;charset=UTF-8").status_code
        == 200
    )
    assert send(client, site, {"events": [page_view()]}, content_type="application/json").status_code == 200
