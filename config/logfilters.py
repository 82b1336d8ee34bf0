"""Logging filters: no personal data in the application's logs.

Access logs print request lines, and query strings carry search terms (?q=jane@example.com) and
visitor ids; any message may quote an email address. `RedactPersonalData` cuts query strings out
of every URL or request path in a record and replaces email addresses, before a handler writes it.
It sits on the handlers (a filter on a logger would miss records propagated from its children).
"""

from __future__ import annotations

import logging
import re

# A path (optionally with scheme and host) followed by a query string: keep the path, drop the query.
QUERY_STRING = re.compile(r"(?P<path>(?:[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'?#/]+)?/[^\s\"'?#]*)\?[^\s\"'#]*")
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
QUERY_MARK = "?[query removed]"
EMAIL_MARK = "[email removed]"


def redact(text: str) -> str:
    """`text` without query strings and email addresses."""
    if "?" in text:
        text = QUERY_STRING.sub(lambda m: m.group("path") + QUERY_MARK, text)
    if "@" in text:
        text = EMAIL.sub(EMAIL_MARK, text)
    return text


class RedactPersonalData(logging.Filter):
    """Rewrites each record's message (its arguments merged in) without personal data; never drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True  # a broken format string is logging's own error to report
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Tracebacks quote exception messages, which may hold an address or a URL.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
