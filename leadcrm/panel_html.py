"""Repeated parts of the lead panel as HTML, built in Python: the one source of this markup.

The timeline (30 items) and the three SVG charts (up to 60 points each) were most of the panel's
render time: every `{{ i.payload.status_to }}` walks the template engine's lookup chain, and each
chart point is three escaped lookups. As templates compiled once they took about 10 times as long
(3–4 ms more on a 17–19 ms panel response; docs/benchmarks.md). The templates own the
surrounding structure and reach these through `{% timeline_items %}` and `{% line_chart %}`
(`leadcrm.templatetags.lead_panel`); `tests/leadcrm/test_markup_golden.py` pins the markup.
Pure: rows and charts in, escaped markup out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape  # the stdlib one: Django's lazy wrapper costs more than the escaping here
from typing import Any

from django.template.defaultfilters import floatformat
from django.utils.safestring import SafeString, mark_safe

from leadcrm.charts import LineChart
from leadcrm.models import InteractionKind

KIND_LABELS: dict[int, str] = dict(InteractionKind.choices)


def _text(value: Any) -> str:
    return escape(str(value))


def _payload_text(payload: Mapping[str, Any], key: str) -> str:
    # What `{{ i.payload.<key> }}` printed: nothing for a missing key, "None" for a null.
    return _text(payload[key]) if key in payload else ""


def _summary(row: Any) -> str:
    try:
        return row.summary
    except AttributeError:  # a non-object payload: the template printed nothing
        return ""


def _full_name(user: Any) -> str:
    return user.get_full_name() or user.username


def timeline_item(row: Any) -> str:
    """One `<li>` of the timeline; `row` is an Interaction carrying `when_iso`/`when_text`."""
    payload = row.payload if isinstance(row.payload, dict) else {}
    summary = _summary(row)
    head = f"<strong>{_text(KIND_LABELS.get(row.kind, row.kind))}</strong>"
    if summary:
        head += f" — {_text(summary)}"
    lines = [
        f'<li class="kind-{row.kind_slug}">',
        f'<time datetime="{_text(row.when_iso)}">{_text(row.when_text)}</time>',
        head,
    ]
    if payload.get("status_to"):
        reason = f": {_payload_text(payload, 'lost_reason')}" if payload.get("lost_reason") else ""
        lines.append(
            f'<span class="muted">(status {_payload_text(payload, "status_from")} → '
            f"{_payload_text(payload, 'status_to')}{reason})</span>"
        )
    if row.sentiment is not None:
        mood = "neg" if row.sentiment < -0.2 else "pos" if row.sentiment > 0.2 else ""
        lines.append(
            f'<span class="sentiment {mood}" title="Sentiment">{_text(floatformat(row.sentiment, 2))}</span>'
        )
    if row.logged_by:
        lines.append(f'<span class="muted">· by {_text(_full_name(row.logged_by))}</span>')
    return "\n      ".join(lines) + "\n    </li>"


def timeline_items(rows: Sequence[Any], *, timeline_kind: str = "") -> SafeString:
    """The timeline's `<li>`s, newest first, or the empty-state item."""
    if not rows:
        of_kind = " of this kind" if timeline_kind else ""
        return mark_safe(f'<li class="muted">No interactions{of_kind} yet.</li>')  # constant text
    return mark_safe("\n    ".join(timeline_item(row) for row in rows))  # parts escaped above


def line_chart(chart: LineChart, *, label: str, css: str, empty_text: str) -> SafeString:
    """An inline SVG line chart (or the empty text) for a `charts.LineChart`."""
    if chart.empty:
        return mark_safe(f'<p class="muted">{_text(empty_text)}</p>')  # escaped
    label, css = _text(label), _text(css)
    first, last = _text(chart.first_label), _text(chart.last_label)
    baseline = (
        f'<line x1="0" x2="{chart.width}" y1="{chart.baseline_y}" y2="{chart.baseline_y}" class="baseline"/>'
        if chart.baseline_y is not None
        else ""
    )
    circles = "".join(
        f'<circle cx="{_text(x)}" cy="{_text(y)}" r="2.5"><title>{_text(text)}</title></circle>'
        for x, y, text in chart.points
    )
    return mark_safe(  # every dynamic part is escaped or a number
        f'\n<figure class="chart {css}">\n'
        f'  <svg viewBox="0 0 {chart.width} {chart.height}" preserveAspectRatio="none" role="img" '
        f'aria-label="{label}: {len(chart.points)} points from {first} to {last}">\n'
        f'    <rect x="0" y="0" width="{chart.width}" height="{chart.height}" class="frame"/>\n'
        f"    {baseline}\n"
        f'    <path d="{_text(chart.path)}" class="line" fill="none"/>\n'
        f"    {circles}\n"
        f"  </svg>\n"
        f'  <figcaption class="muted"><span>{first}</span><span>{label}</span><span>{last}</span></figcaption>\n'
        f"</figure>\n"
    )
