"""No personal data in logs: query strings and email addresses never reach a log line."""

from __future__ import annotations

import io
import logging
import logging.config
from collections.abc import Iterator

import pytest
from django.conf import settings

from config.logfilters import RedactPersonalData, redact


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """What the configured console handler (settings.LOGGING) writes, captured."""
    # Applied afresh: another test's Celery worker or server may have reconfigured the root logger.
    logging.config.dictConfig(settings.LOGGING)
    (handler,) = [h for h in logging.getLogger().handlers if h.get_name() == "console"]
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    old = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(old)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '"GET /crm/?q=jane%40example.com&page=2 HTTP/1.1" 200 5120',
            '"GET /crm/?[query removed] HTTP/1.1" 200 5120',
        ),
        (
            "HTTP GET /api/v1/chat/sites/k/config/?visitor=v-123 200 [0.01, 127.0.0.1:5000]",
            "HTTP GET /api/v1/chat/sites/k/config/?[query removed] 200 [0.01, 127.0.0.1:5000]",
        ),
        ("from https://shop.example/p?ref=x#top", "from https://shop.example/p?[query removed]#top"),
        ("Lead jane.doe+crm@mail.example.co.uk merged", "Lead [email removed] merged"),
        ("Is this a question? Yes at 10:00", "Is this a question? Yes at 10:00"),
    ],
)
def test_redact(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_runserver_access_lines_lose_their_query_string(console: io.StringIO) -> None:
    # Exactly how Django's runserver logs a request (django/core/servers/basehttp.py).
    logging.getLogger("django.server").info(
        '"%s" %s %s', "GET /crm/?q=Jane+Doe&visitor=v-42 HTTP/1.1", "200", "5120"
    )
    out = console.getvalue()
    assert "GET /crm/?[query removed] HTTP/1.1" in out
    assert "Jane" not in out
    assert "v-42" not in out


@pytest.mark.parametrize(
    "logger", ["django.request", "django.channels.server", "uvicorn.access", "gunicorn.access"]
)
def test_other_servers_access_logs_are_filtered_too(console: io.StringIO, logger: str) -> None:
    logging.getLogger(logger).info("%s - %s %s", "127.0.0.1", "GET", "/crm/leads/?q=secret-term")
    assert "secret-term" not in console.getvalue()
    assert "/crm/leads/?[query removed]" in console.getvalue()


def test_application_messages_and_tracebacks_lose_email_addresses(console: io.StringIO) -> None:
    log = logging.getLogger("leadcrm.services")
    log.warning("Duplicate email %s for lead %s", "jane@example.com", 7)
    try:
        raise ValueError("bad address bob@example.org")
    except ValueError:
        log.exception("Import row failed")
    out = console.getvalue()
    assert "jane@example.com" not in out
    assert "bob@example.org" not in out
    assert "Duplicate email [email removed] for lead 7" in out
    assert "ValueError: bad address [email removed]" in out


def test_the_filter_never_drops_a_record() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "broken %s %s", ("one",), None)
    assert RedactPersonalData().filter(record) is True  # a bad format is logging's own error
