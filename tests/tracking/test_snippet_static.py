"""The tracking snippet file itself: size budget, CSP-safe, Do-Not-Track, no HTML sinks."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

SNIPPET = Path(__file__).resolve().parents[2] / "tracking" / "static" / "tracking" / "track.js"


def test_snippet_is_at_most_3_kb_gzipped_as_served() -> None:
    # Served as it is (no minifier in front of it), so the file itself is measured.
    assert len(gzip.compress(SNIPPET.read_bytes(), compresslevel=9)) <= 3 * 1024


def test_snippet_writes_no_html_injects_no_styles_and_evaluates_no_strings() -> None:
    source = SNIPPET.read_text(encoding="utf-8")
    assert not re.search(
        r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|\beval\(|new Function", source
    )
    assert not re.search(r"""createElement\(\s*["']s(tyle|cript)["']|setAttribute\(\s*["']style""", source)


def test_snippet_honours_do_not_track_before_sending_anything() -> None:
    source = SNIPPET.read_text(encoding="utf-8")
    source = source[source.index("*/") :]  # the code, not the header comment
    dnt = source.index("doNotTrack")
    assert "globalPrivacyControl" in source
    assert dnt < source.index("fetch(")
    assert dnt < source.index("sendBeacon")


def test_snippet_sends_by_beacon_as_text_plain_and_sets_no_cookie() -> None:
    source = SNIPPET.read_text(encoding="utf-8")
    assert "sendBeacon" in source
    assert '"text/plain"' in source
    assert "document.cookie" not in source
    assert "d.cookie" not in source
    assert "window.leadcrm" in source or "w.leadcrm = api" in source
