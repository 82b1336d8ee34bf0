"""Server-side SVG chart geometry. Pure: numbers in, coordinates out; the templates draw them.

Small inline SVGs need no JavaScript library, print fine, and come with a data table beside them
for screen readers (the SVG itself is labelled and marked as an image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    path: str  # SVG path "M x y L x y …"
    points: list[tuple[str, str, str]]  # x, y (formatted for SVG), label (for <title> tooltips)
    y_min: float
    y_max: float
    baseline_y: str | None  # y of value 0 when 0 is inside the range (sentiment)
    first_label: str
    last_label: str

    @property
    def empty(self) -> bool:
        return not self.points


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    width: str  # 0..100 (% of the widest bar), formatted for CSS
    text: str


def line_chart(
    series: Sequence[tuple[datetime, float]],
    *,
    width: int = 320,
    height: int = 90,
    y_min: float | None = None,
    y_max: float | None = None,
    pad: int = 6,
    fmt: str = "{:.0f}",
) -> LineChart:
    """Scale (time, value) pairs into a polyline inside width × height (oldest left)."""
    series = sorted(series, key=lambda p: p[0])
    if not series:
        return LineChart(width, height, "", [], 0, 0, None, "", "")
    values = [v for _, v in series]
    lo = min(values) if y_min is None else y_min
    hi = max(values) if y_max is None else y_max
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    t0, t1 = series[0][0].timestamp(), series[-1][0].timestamp()
    span = (t1 - t0) or 1.0

    def x_of(t: datetime) -> float:
        if len(series) == 1:
            return width / 2
        return round(pad + (width - 2 * pad) * (t.timestamp() - t0) / span, 1)

    def y_of(v: float) -> float:
        return round(height - pad - (height - 2 * pad) * (v - lo) / (hi - lo), 1)

    points = [(f"{x_of(t)}", f"{y_of(v)}", f"{t:%Y-%m-%d %H:%M}: {fmt.format(v)}") for t, v in series]
    path = " ".join(f"{'M' if i == 0 else 'L'}{x} {y}" for i, (x, y, _) in enumerate(points))
    baseline = f"{y_of(0.0)}" if lo < 0 < hi else None
    return LineChart(
        width,
        height,
        path,
        points,
        lo,
        hi,
        baseline,
        f"{series[0][0]:%Y-%m-%d}",
        f"{series[-1][0]:%Y-%m-%d}",
    )


def bars(rows: Sequence[tuple[str, float]], *, fmt: str = "{:.0f}") -> list[Bar]:
    """Horizontal bars scaled to the largest value (values below zero draw as empty)."""
    top = max((v for _, v in rows), default=0) or 1
    return [
        Bar(label, value, f"{round(100 * max(value, 0) / top, 1)}", fmt.format(value))
        for label, value in rows
    ]


@dataclass(frozen=True)
class Column:
    x: str
    y: str
    width: str
    height: str
    label: str  # for the <title> tooltip, e.g. "week of 2026-03-02: 14"


@dataclass(frozen=True)
class ColumnChart:
    width: int
    height: int
    columns: list[Column]
    max_value: float
    first_label: str
    last_label: str

    @property
    def empty(self) -> bool:
        return not self.columns or self.max_value <= 0


def columns(
    rows: Sequence[tuple[str, float]],
    *,
    width: int = 320,
    height: int = 90,
    gap: float = 1.0,
    fmt: str = "{:.0f}",
) -> ColumnChart:
    """Vertical columns, one per (label, value), oldest left, scaled to the largest value."""
    if not rows:
        return ColumnChart(width, height, [], 0, "", "")
    top = max(max(v for _, v in rows), 0)
    step = width / len(rows)
    bar = max(step - gap, 0.5)
    out = []
    for i, (label, value) in enumerate(rows):
        h = round(height * max(value, 0) / top, 1) if top else 0.0
        out.append(
            Column(
                f"{round(i * step, 1)}",
                f"{round(height - h, 1)}",
                f"{round(bar, 1)}",
                f"{h}",
                f"{label}: {fmt.format(value)}",
            )
        )
    return ColumnChart(width, height, out, top, rows[0][0], rows[-1][0])
