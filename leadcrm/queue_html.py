"""The queue's rows as HTML, built in Python: the one source of this markup (no template has it).

The queue is the hottest page: 50 rows, polled every 15 seconds by every open tab. The same rows
as a Django template compiled once took 5–6 times as long to render (3–4 ms more on a 5–8 ms
response; docs/benchmarks.md), so the rows, and the empty state in their place, are assembled
here with explicit escaping. The surrounding table stays a template
(`templates/leadcrm/partials/queue_table.html`), and `tests/leadcrm/test_markup_golden.py` pins
the markup: a change here shows up as a reviewable HTML diff. Pure: rows and URLs in, markup out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape  # the stdlib one: Django's lazy wrapper costs more than the escaping here
from typing import Any

from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from leadcrm.models import LeadStatus

STATUS_LABELS = dict(LeadStatus.choices)


def ago(value: datetime | None, now: datetime) -> str:
    """'3 h ago', '2 d ago': one unit is enough in a dense table (the full time is in the title)."""
    if value is None:
        return ""
    seconds = max(0, int((now - value).total_seconds()))
    for size, unit in ((86400 * 365, "y"), (86400 * 30, "mo"), (86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def _owner_cell(lead: Any, user_id: int, claim_url: str, csrf_token: str) -> str:
    if lead.owner_id == user_id:
        return "<strong>You</strong>"
    if lead.owner_id:
        owner = lead.owner
        return escape(f"{owner.first_name} {owner.last_name}".strip() or owner.username)
    name = escape(lead.display_name)
    return (
        f'<form method="post" action="{claim_url}" hx-post="{claim_url}" hx-target="#lead-panel" '
        f'hx-swap="innerHTML"><input type="hidden" name="csrfmiddlewaretoken" value="{escape(csrf_token)}">'
        f'<button type="submit" id="claim-{lead.pk}" class="small" aria-label="Claim {name}">Claim</button></form>'
    )


def _percent(probability: float | None) -> str:
    return "no model score" if probability is None else f"{round(100 * probability)}%"


def why_above(lead: Any, below: Any | None) -> str:
    """One line: why `lead` ranks above `below`, the next lead in priority order (None: the last one).

    The priority blends the rule score with the model's probability (scoring.priority), so a lead
    with a lower probability can rank higher on its rule score, and the other way round: this
    line says which part decided.
    """
    if below is None:
        return f"Priority {lead.priority:.1f}: the lowest of these leads."
    name = below.display_name
    parts = (
        f"rule score {lead.rule_score:.0f} vs {below.rule_score:.0f}, "
        f"probability {_percent(lead.ml_probability)} vs {_percent(below.ml_probability)}"
    )
    if abs(lead.priority - below.priority) < 0.05:
        return f"Same priority as {name} ({lead.priority:.1f}): the lead that arrived first is listed first ({parts})."
    rule_up = lead.rule_score - below.rule_score
    both_scored = lead.ml_probability is not None and below.ml_probability is not None
    prob_up = (lead.ml_probability - below.ml_probability) if both_scored else 0.0
    if both_scored and rule_up > 0.5 and prob_up <= 0.005:
        decided = "its higher rule score outweighs the probability"
    elif both_scored and prob_up > 0.005 and rule_up <= 0.5:
        decided = "its higher probability outweighs the rule score"
    elif both_scored:
        decided = "higher rule score and probability"
    else:
        decided = "by rule score (no model probability for both)"
    return f"Priority {lead.priority:.1f} vs {below.priority:.1f} for {name}: {decided} ({parts})."


def _empty_row(*, filtered: bool, queue_url: str) -> SafeString:
    text = (
        f'No leads match these filters. <a href="{escape(queue_url)}">Show the whole queue</a>'
        if filtered
        else "No leads yet. New leads appear here as they arrive; a manager can import a spreadsheet under Manage → Import."
    )
    return mark_safe(f'<tr><td colspan="7" class="empty">{text}</td></tr>')  # the URL is escaped


def queue_rows(
    rows: Sequence[Any],
    *,
    user_id: int,
    lead_base: str,
    claim_suffix: str,
    query: str,
    csrf_token: str,
    now: datetime,
    filtered: bool,
    queue_url: str,
    by_priority: bool = True,
    after: Any | None = None,
) -> SafeString:
    """`<tr>`s for the queue table, or its empty state; rows carry `top_reason` and `is_live` from the selector.

    `lead_base` + pk + `claim_suffix` is a lead's claim URL; `query` ("?grade=A" or "") keeps the
    filters on the row links; `queue_url` is the empty state's "show the whole queue" link. When
    the rows are in priority order (`by_priority`), each priority cell carries a one-line "why
    above the next one" (`after`: the first lead of the next page, so the last row has one too),
    shown on hover and when the row's link has keyboard focus (it describes the link).
    """
    if not rows:
        return _empty_row(filtered=filtered, queue_url=queue_url)
    out: list[str] = []
    following = [*rows[1:], after]
    for lead, below in zip(rows, following, strict=True):
        pk = lead.pk
        panel_url = f"{lead_base}{pk}/"
        url = escape(panel_url + query)
        name = escape(lead.display_name)
        reason = escape(lead.top_reason)
        badges = '<span class="badge live">Live now</span>' if lead.is_live else ""
        if lead.status != LeadStatus.NEW:
            status = escape(lead.status)
            label = STATUS_LABELS.get(lead.status, status)  # the labels are plain text
            badges += f'<span class="badge status-{status}">{label}</span>'
        grade = escape(lead.grade) or "–"
        letter = escape(lead.grade[:1]) or "none"
        score_title = (
            f"Fit {lead.fit_score:.0f} · engagement {lead.engagement_score:.0f} · score {lead.rule_score:.0f}"
        )
        probability = (
            '<span class="muted" title="No model score yet">–</span>'
            if lead.ml_probability is None
            else f"{round(100 * lead.ml_probability)}%"
        )
        if lead.last_activity_at:
            local = timezone.localtime(lead.last_activity_at)
            activity = (
                f'<time datetime="{lead.last_activity_at.isoformat()}" title="{local:%d %b %Y, %H:%M} {local.tzname()}">'
                f"{ago(lead.last_activity_at, now)}</time>"
            )
        else:
            activity = '<span class="muted">none yet</span>'
        owner = _owner_cell(lead, user_id, f"{lead_base}{pk}{claim_suffix}", csrf_token)
        live_class = ' class="is-live"' if lead.is_live else ""
        if by_priority:
            described = f' aria-describedby="why-{pk}"'
            priority = (
                f'<span class="priority">{lead.priority:.0f}</span>'
                f'<span class="why-tip" id="why-{pk}" role="tooltip">{escape(why_above(lead, below))}</span>'
            )
        else:
            described = ""
            priority = f'<span class="priority">{lead.priority:.0f}</span>'
        out.append(
            f'<tr id="row-{pk}" data-lead-id="{pk}"{live_class}>'
            f'<td class="lead-cell"><a id="lead-link-{pk}" class="lead-name" href="{url}" hx-get="{panel_url}" '
            f'hx-target="#lead-panel" hx-swap="innerHTML" hx-push-url="{url}"{described}>{name}</a> {badges}'
            f'<span class="company">{escape(lead.company_name)}</span>'
            f'<span class="narrow-only muted">{reason}</span></td>'
            f'<td class="col-priority">{priority}</td>'
            f'<td><span class="grade grade-{letter}" title="{score_title}">{grade}</span></td>'
            f"<td>{probability}</td>"
            f'<td class="col-why">{reason or "—"}</td>'
            f'<td class="col-activity">{activity}</td>'
            f"<td>{owner}</td></tr>"
        )
    return mark_safe("\n".join(out))  # every dynamic part above is escaped or a number
