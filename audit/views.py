"""The audit page: managers read who viewed, exported, changed or erased what, and when."""

from __future__ import annotations

import json
from typing import Any

from django.db import connection
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from audit import selectors
from audit.forms import COMMON_ZONES, TrailFilterForm
from audit.models import Entry
from leadcrm.http import HtmxHttpRequest
from leadcrm.permissions import manager_required

PER_PAGE = 50
VALUE_CHARS = 300


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def _prepare(rows: list[Entry], zone: Any) -> list[Entry]:
    # Formatted once here, in the reader's zone: the template only prints.
    for row in rows:
        local = row.at.astimezone(zone)
        row.when_iso = row.at.isoformat()  # type: ignore[attr-defined]
        row.when_text = f"{local:%Y-%m-%d %H:%M:%S}"  # type: ignore[attr-defined]
        row.change_rows = [(col, _shown(b), _shown(a)) for col, b, a in row.changes]  # type: ignore[attr-defined]
    return rows


def _page_number(raw: str | None) -> int:
    try:
        return max(1, min(int(raw or 1), 10_000))
    except ValueError:
        return 1


@manager_required
@require_GET
@vary_on_headers("HX-Request")
def trail(request: HtmxHttpRequest) -> HttpResponse:
    """The filtered trail, newest first, 50 rows a page; HTMX swaps only the results."""
    form = TrailFilterForm(request.GET)
    valid = form.is_valid()
    page = _page_number(request.GET.get("page"))
    rows: list[Entry] = []
    if valid:
        since, until = form.bounds()
        data = form.cleaned_data
        rows = selectors.trail(
            actor=data["actor"].strip(),
            action=data["action"],
            target_type=data["target_type"],
            target_id=data["target_id"].strip(),
            lead=data["lead"],
            since=since,
            until=until,
            offset=(page - 1) * PER_PAGE,
            limit=PER_PAGE + 1,
        )
    zone = form.zone()
    context = {
        "form": form,
        "rows": _prepare(rows[:PER_PAGE], zone),
        "has_next": len(rows) > PER_PAGE,
        "page": page,
        "zone_name": str(zone),
        "zones": sorted({*COMMON_ZONES, str(zone)}),
        "row_capture": connection.vendor == "postgresql",
        "filtered": any(v for k, v in request.GET.items() if k not in ("page", "tz")),
    }
    template = (
        "audit/partials/results.html"
        if request.htmx and not request.htmx.history_restore_request
        else "audit/trail.html"
    )
    return render(request, template, context, status=200 if valid else 400)
