"""The embeddable widget file itself: size budget and no HTML sinks for visitor/agent text."""

from __future__ import annotations

import re
from pathlib import Path

import rjsmin

WIDGET = Path(__file__).resolve().parents[2] / "chatbot" / "static" / "chatbot" / "widget.js"
PANEL = WIDGET.with_name("agent_panel.js")


def test_widget_is_at_most_25_kb_minified() -> None:
    minified = rjsmin.jsmin(WIDGET.read_text(encoding="utf-8"))
    assert len(minified.encode()) <= 25 * 1024


def test_widget_and_panel_never_write_html() -> None:
    for path in (WIDGET, PANEL):
        source = path.read_text(encoding="utf-8")
        assert not re.search(
            r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|\beval\(", source
        ), path.name


def test_widget_renders_in_a_shadow_root() -> None:
    assert "attachShadow" in WIDGET.read_text(encoding="utf-8")


def test_widget_injects_no_inline_styles_and_ships_its_stylesheet() -> None:
    source = WIDGET.read_text(encoding="utf-8")
    # A strict CSP (style-src 'self') blocks <style> elements and style="" attributes.
    assert not re.search(r"""el\(\s*["']style["']|createElement\(\s*["']style["']""", source)
    assert not re.search(r"""["']?style["']?\s*:\s*["']""", source)
    assert not re.search(r"""setAttribute\(\s*["']style["']""", source)
    assert "widget.css" in source
    css = WIDGET.with_name("widget.css").read_text(encoding="utf-8")
    assert ".w{position:fixed" in css


def test_widget_puts_no_token_in_urls() -> None:
    source = WIDGET.read_text(encoding="utf-8")
    assert "X-Chat-Token" in source
    assert "encodeURIComponent(token)" not in source
    assert "?visitor_id=" not in source
