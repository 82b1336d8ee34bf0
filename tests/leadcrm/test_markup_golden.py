"""The hot fragments built in Python, pinned against checked-in HTML (`tests/leadcrm/golden/`).

Queue rows (and their empty state), timeline items and the panel's charts are built as HTML in
`leadcrm.queue_html` and `leadcrm.panel_html`, their only source (a template was measured several
times slower). These tests render each fragment for inputs that take every branch and compare the
result with the golden file byte for byte, so a markup change is a reviewed HTML diff. After an
intended change: `UPDATE_GOLDEN=1 .venv/bin/pytest tests/leadcrm/test_markup_golden.py`, then read
the diff. No database: the rows are unsaved model instances.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from leadcrm import charts, panel_html, queue_html
from leadcrm.models import Interaction, InteractionKind, Lead

GOLDEN = Path(__file__).resolve().parent / "golden"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ME = User(pk=1, username="sam", first_name="Sam", last_name="Seller")
RIVAL = User(pk=2, username="rita", first_name="Rita", last_name="O'Rival")
NAMELESS = User(pk=3, username="nobody")
HOSTILE = "<script>alert(1)</script>"
VOID_TAGS = {"input", "br", "img", "meta", "link", "hr", "col", "wbr"}


class _Balance(HTMLParser):
    """Fails on an end tag that closes something other than the innermost open element."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        innermost = self.open.pop() if self.open else None
        assert innermost == tag, f"</{tag}> where <{innermost}> is open"


def assert_well_formed(html: str) -> None:
    parser = _Balance()
    parser.feed(html)
    parser.close()
    assert parser.open == [], f"left open: {parser.open}"


def assert_matches_golden(name: str, html: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(html)
        pytest.skip(f"rewrote {path.name}: review its diff")
    assert html == path.read_text(), (
        f"{name} changed. If intended, rerun with UPDATE_GOLDEN=1 and review the diff of {path}."
    )


def queue_lead(pk: int, *, top_reason: str = "", is_live: bool = False, **fields: Any) -> Lead:
    lead = Lead(
        pk=pk, **{"first_name": "Ada", "last_name": f"Lovelace{pk}", "company_name": "Engines Ltd", **fields}
    )
    lead.top_reason = top_reason  # set by selectors.queue_page
    lead.is_live = is_live
    return lead


def queue_rows_html(rows: list[Lead], **overrides: Any) -> str:
    return queue_html.queue_rows(
        rows,
        **{
            "user_id": ME.pk,
            "lead_base": "/crm/leads/",
            "claim_suffix": "/claim/",
            "query": "?grade=A&q=tom+%26+jerry",
            "csrf_token": "t0ken",
            "now": NOW,
            "filtered": False,
            "queue_url": "/crm/",
            **overrides,
        },
    )


def test_queue_rows() -> None:
    rows = [
        queue_lead(
            11,
            first_name="Mia",
            last_name="Santos",
            owner=ME,
            status="working",
            grade="A1",
            rule_score=82.4,
            fit_score=48,
            engagement_score=34.5,
            ml_probability=0.64,
            last_activity_at=NOW - timedelta(hours=2, minutes=5),
            top_reason="Decision maker (owner or C-level) (+15)",
            is_live=True,
        ),
        queue_lead(
            12,
            first_name=HOSTILE,
            last_name="",
            company_name='Tom & Jerry "Cheese" <Ltd>',
            top_reason="<b>bold</b> (+5)",
        ),
        queue_lead(
            13,
            owner=RIVAL,
            status="qualified",
            grade="C3",
            ml_probability=0.0,
            last_activity_at=NOW - timedelta(days=40),
        ),
        queue_lead(14, owner=NAMELESS, status="lost", last_activity_at=NOW - timedelta(days=400)),
        queue_lead(
            15,
            first_name="",
            last_name="",
            email="",
            grade="B2",
            last_activity_at=NOW - timedelta(seconds=30),
        ),
    ]
    html = queue_rows_html(rows)

    assert_well_formed(f"<table><tbody>{html}</tbody></table>")
    for raw in ("<script>", "<b>", "<Ltd>"):
        assert raw not in html
    assert 'aria-label="Claim &lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert 'href="/crm/leads/11/?grade=A&amp;q=tom+%26+jerry"' in html
    assert html.count("<form") == 2  # the two unassigned leads
    assert_matches_golden("queue_rows.html", html)


def test_queue_empty_states() -> None:
    html = "\n".join(
        [
            queue_rows_html([], filtered=True, queue_url="/crm/?x=<1>"),
            queue_rows_html([]),
        ]
    )

    assert_well_formed(f"<table><tbody>{html}</tbody></table>")
    assert 'href="/crm/?x=&lt;1&gt;"' in html
    assert_matches_golden("queue_empty.html", html)


def timeline_row(pk: int, kind: InteractionKind, *, minutes_ago: int, **fields: Any) -> Interaction:
    row = Interaction(pk=pk, kind=kind, occurred_at=NOW - timedelta(minutes=minutes_ago), **fields)
    row.when_iso = row.occurred_at.isoformat()  # set by selectors.lead_timeline
    row.when_text = f"{row.occurred_at.day} {row.occurred_at:%b %Y, %H:%M}"
    return row


def test_timeline_items() -> None:
    rows = [
        timeline_row(
            1,
            InteractionKind.CHAT_MESSAGE,
            minutes_ago=5,
            payload={"text": f"{HOSTILE} Pricing for 10 users?"},
            sentiment=0.5,
        ),
        timeline_row(
            2,
            InteractionKind.NOTE,
            minutes_ago=60,
            payload={"status_from": "working", "status_to": "lost", "lost_reason": "No <budget>"},
            logged_by=ME,
        ),
        timeline_row(
            3, InteractionKind.PAGE_VIEW, minutes_ago=120, payload={"url": "/pricing?a=1&b=2"}, sentiment=-0.5
        ),
        timeline_row(
            4,
            InteractionKind.CALL,
            minutes_ago=600,
            payload={"status_from": None, "status_to": "won", "duration_s": 720},
            sentiment=0.1,
            logged_by=RIVAL,
        ),
        timeline_row(5, InteractionKind.FORM_SUBMIT, minutes_ago=6000, payload=["not", "an", "object"]),
        timeline_row(
            6, InteractionKind.EMAIL_OPEN, minutes_ago=9000, payload={"subject": "Hi"}, logged_by=NAMELESS
        ),
    ]
    html = panel_html.timeline_items(rows)

    assert_well_formed(f"<ol>{html}</ol>")
    assert "<script>" not in html
    assert "<budget>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Pricing" in html
    assert_matches_golden("timeline_items.html", html)


def test_timeline_empty_states() -> None:
    html = "\n".join([panel_html.timeline_items([]), panel_html.timeline_items([], timeline_kind="call")])

    assert_well_formed(html)
    assert_matches_golden("timeline_empty.html", html)


def test_line_charts() -> None:
    days = [NOW - timedelta(days=d) for d in (10, 6, 2)]
    score = charts.line_chart(list(zip(days, [35.0, 48.5, 82.0], strict=True)), y_min=0, y_max=100)
    sentiment = charts.line_chart(
        list(zip(days, [-0.4, 0.25, 0.8], strict=True)), y_min=-1, y_max=1, fmt="{:+.2f}"
    )
    single = charts.line_chart([(NOW, 50.0)], y_min=0, y_max=100, fmt="{:.0f}%")
    html = "".join(
        [
            panel_html.line_chart(score, label="Rule score over time", css="score", empty_text=""),
            panel_html.line_chart(
                sentiment, label="Chat message sentiment, −1 to +1", css="sentiment", empty_text=""
            ),
            panel_html.line_chart(
                single, label='Probability "<over> time"', css="probability", empty_text=""
            ),
            panel_html.line_chart(
                charts.line_chart([]), label="unused", css="score", empty_text="No <score> history yet."
            ),
        ]
    )

    assert_well_formed(html)
    assert html.count('class="baseline"') == 1  # only the sentiment chart crosses zero
    assert "<over>" not in html
    assert "<score>" not in html
    assert_matches_golden("line_charts.html", html)
