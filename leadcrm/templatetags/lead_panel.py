"""Template tags for the lead panel's repeated parts (the markup is built in `leadcrm.panel_html`)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from leadcrm import panel_html
from leadcrm.charts import LineChart

register = template.Library()


@register.simple_tag
def timeline_items(rows: Any, timeline_kind: str = "") -> SafeString:
    return panel_html.timeline_items(rows or [], timeline_kind=timeline_kind or "")


@register.simple_tag
def line_chart(chart: LineChart, label: str, css: str, empty_text: str = "") -> SafeString:
    return panel_html.line_chart(chart, label=label, css=css, empty_text=empty_text)
