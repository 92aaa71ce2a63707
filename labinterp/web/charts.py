"""A trend chart of one analyte as server-side SVG: points in, markup out. Pure (no Flask, no
database, no clock), so every drawing rule is unit-tested (tests/web/test_charts.py).

What it draws (research/review-ui.md T1–T4):

* x is the true collection time, y the canonical unit, not forced to zero;
* the reference interval shaded behind each point (intervals change over time: each point's
  own), a one-sided interval shaded to the edge of the plot;
* flags by shape, never colour alone: a circle for normal, a triangle pointing down for low
  and up for high, a diamond with a "C" for a critical value, a hollow circle for a value
  that was not judged; the current panel's point ringed and labelled with its value;
* critical limits as dashed lines;
* ``role="img"`` with a ``<title>`` and a ``<desc>`` that says the trend in one sentence.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH = 480
HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 50, 16, 26, 38  # margins around the plot, in SVG units
CRITICAL_FLAGS = frozenset({"LL", "HH"})  # beyond a critical limit (domain/judging.py)
LOW_FLAGS = frozenset({"L", "LL"})
HIGH_FLAGS = frozenset({"H", "HH"})
FLAG_WORDS = {
    "N": "within the interval",
    "L": "low",
    "H": "high",
    "LL": "critically low",
    "HH": "critically high",
    "IND": "not judged (no interval)",
}


@dataclass(frozen=True)
class ChartPoint:
    """One result: when it was collected, its value in the chart's unit, the interval that
    judged it (in the same unit; None for an open side, both None for none) and its flag."""

    at: dt.datetime
    value: Decimal
    low: Decimal | None = None
    high: Decimal | None = None
    flag: str | None = None  # N, L, H, LL, HH, IND; None: not interpreted (yet)
    critical: bool = False
    current: bool = False  # the panel the page is about
    label: str = ""  # the accession, in the point's tooltip

    @property
    def is_critical(self) -> bool:
        return self.critical or self.flag in CRITICAL_FLAGS

    @property
    def has_band(self) -> bool:
        return self.low is not None or self.high is not None

    @property
    def flag_word(self) -> str:
        if self.is_critical and self.flag not in CRITICAL_FLAGS:
            return "critical"
        return FLAG_WORDS.get(self.flag or "", "not interpreted yet")


@dataclass(frozen=True)
class CriticalLine:
    """A critical limit, drawn dashed across the plot."""

    value: Decimal
    label: str  # "critical > 6.2"


def number(value: Decimal | float | int) -> str:
    """A value as a clinician reads it: 0.70, 50, 6.8 (no exponent, its own decimals)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    return format(value, "g")


def _date(at: dt.datetime) -> str:
    return f"{at.day} {at:%b %Y}"


def describe(points: Sequence[ChartPoint], name: str, unit: str) -> str:
    """The trend in one sentence, for the chart's <desc> and for anyone who cannot see it."""
    points = sorted(points, key=lambda p: p.at)
    if name[:1].isupper() and name[1:2].islower():  # "Potassium", not "B12" or "25-OH …"
        name = name[0].lower() + name[1:]
    if not points:
        return f"No {name} results."
    last = points[-1]
    if len(points) == 1:
        return (
            f"One {name} result: {number(last.value)} {unit} on {_date(last.at)}, {last.flag_word}."
        )
    first = points[0]
    if last.value > first.value:
        course = f"rising from {number(first.value)} to {number(last.value)} {unit}"
    elif last.value < first.value:
        course = f"falling from {number(first.value)} to {number(last.value)} {unit}"
    else:
        course = f"{number(last.value)} {unit} at the first and the last"
    outside = sum(1 for p in points if p.flag in LOW_FLAGS | HIGH_FLAGS)
    critical = sum(1 for p in points if p.is_critical)
    counts = f"{outside} of {len(points)} outside the reference interval"
    if critical:
        counts += f", {critical} critical"
    return (
        f"{len(points)} {name} results from {_date(first.at)} to {_date(last.at)}, {course}; "
        f"{counts}; the latest is {last.flag_word}."
    )


def _nice_step(span: float, count: int) -> float:
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= multiple * magnitude:
            return multiple * magnitude
    return 10 * magnitude  # pragma: no cover - 10 always fits


def value_axis(values: Sequence[float], ticks: int = 4) -> tuple[float, float, list[float]]:
    """(bottom, top, tick values) of a y axis that shows ``values`` with some room, on round
    numbers, not forced to zero. Identical values get a span around them."""
    low, high = min(values), max(values)
    span = high - low
    if span == 0:
        span = abs(high) * 0.2 or 1.0
        low, high = low - span / 2, high + span / 2
    pad = span * 0.1
    step = _nice_step(span + 2 * pad, ticks)
    bottom = math.floor((low - pad) / step) * step
    top = math.ceil((high + pad) / step) * step
    count = round((top - bottom) / step)
    return bottom, top, [bottom + i * step for i in range(count + 1)]


def _tick_text(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if decimals == 0 and step % 1:  # 2.5, 0.25 …
        decimals = 1
    elif step * 10**decimals % 1 > 1e-9:
        decimals += 1
    return f"{value:.{decimals}f}"


def trend_svg(
    points: Sequence[ChartPoint],
    *,
    name: str,
    unit: str,
    chart_id: str,
    critical_lines: Sequence[CriticalLine] = (),
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """The chart as an inline <svg> element (no script, no style attribute: it renders under
    a strict Content-Security-Policy; the page's stylesheet colours it by class)."""
    points = sorted(points, key=lambda p: p.at)
    if not points:
        return Markup("")
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    edges = [float(v) for p in points for v in (p.low, p.high) if v is not None]
    limits = [float(c.value) for c in critical_lines]
    bottom, top, y_ticks = value_axis([float(p.value) for p in points] + edges + limits)

    def y(value: float) -> float:
        return TOP + plot_h - (value - bottom) / (top - bottom) * plot_h

    times = [p.at.timestamp() for p in points]
    first, last = min(times), max(times)
    pad = max((last - first) * 0.06, 12 * 3600.0)
    start, end = first - pad, last + pad

    def x(at: dt.datetime) -> float:
        return LEFT + (at.timestamp() - start) / (end - start) * plot_w

    xs = [x(p.at) for p in points]
    title = f"{name} over time ({unit})"
    out: list[str] = [
        f'<svg class="trend" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(describe(points, name, unit))}</desc>',
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>',
    ]
    out += _bands(points, xs, y, plot_w, plot_h)
    step = y_ticks[1] - y_ticks[0]
    for tick in y_ticks:
        ty = _r(y(tick))
        out.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{ty}" y2="{ty}"/>')
        out.append(
            f'<text class="tick" x="{LEFT - 8}" y="{ty}" text-anchor="end" '
            f'dominant-baseline="middle">{_tick_text(tick, step)}</text>'
        )
    out.append(f'<text class="axis-title" x="{LEFT}" y="{TOP - 10}">{escape(unit)}</text>')
    for line in critical_lines:
        ly = _r(y(float(line.value)))
        out.append(
            f'<line class="critical-limit" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{ly}" y2="{ly}"/>'
            f'<text class="critical-label" x="{LEFT + 4}" y="{_r(float(ly) - 4)}">'
            f"{escape(line.label)}</text>"
        )
    out += _time_ticks(points, xs, TOP + plot_h, LEFT + plot_w)
    if len(points) > 1:
        path = " ".join(
            f"{_r(px)},{_r(y(float(p.value)))}" for px, p in zip(xs, points, strict=True)
        )
        out.append(f'<polyline class="line" points="{path}"/>')
    for px, point in zip(xs, points, strict=True):
        out.append(_marker(point, px, y(float(point.value)), unit, LEFT + plot_w))
    out.append("</svg>")
    # every text in it went through escape() above; the rest is numbers and fixed names
    return Markup("".join(out))  # noqa: S704


def _bands(
    points: Sequence[ChartPoint],
    xs: Sequence[float],
    y: Callable[[float], float],
    plot_w: float,
    plot_h: float,
) -> list[str]:
    """Each point's interval as a shaded column reaching halfway to its neighbours; an open
    side reaches the plot's edge. Both edges drawn as lines, so the band reads without its
    tint."""
    shapes: list[str] = []
    for i, point in enumerate(points):
        if not point.has_band:
            continue
        left = LEFT if i == 0 else (xs[i - 1] + xs[i]) / 2
        right = LEFT + plot_w if i == len(points) - 1 else (xs[i] + xs[i + 1]) / 2
        y_top = TOP if point.high is None else y(float(point.high))
        y_bottom = TOP + plot_h if point.low is None else y(float(point.low))
        y_top, y_bottom = max(TOP, y_top), min(TOP + plot_h, y_bottom)
        if y_bottom <= y_top:
            continue
        shapes.append(
            f'<rect class="band" x="{_r(left)}" y="{_r(y_top)}" '
            f'width="{_r(right - left)}" height="{_r(y_bottom - y_top)}"/>'
        )
        for edge in (point.low, point.high):
            if edge is not None:
                ey = _r(y(float(edge)))
                shapes.append(
                    f'<line class="band-edge" x1="{_r(left)}" x2="{_r(right)}" '
                    f'y1="{ey}" y2="{ey}"/>'
                )
    return shapes


def _time_ticks(
    points: Sequence[ChartPoint], xs: Sequence[float], baseline: float, right: float
) -> list[str]:
    """A date under each point, skipping any that would overlap the one before."""
    out = [f'<line class="axis" x1="{LEFT}" x2="{right}" y1="{baseline}" y2="{baseline}"/>']
    placed: float | None = None
    for px, point in zip(xs, points, strict=True):
        if placed is not None and px - placed < 80:
            continue
        placed = px
        label_x = min(max(px, 36.0), WIDTH - 36.0)  # a date is about 70 units wide
        out.append(
            f'<line class="tick-mark" x1="{_r(px)}" x2="{_r(px)}" y1="{baseline}" '
            f'y2="{baseline + 5}"/><text class="tick" x="{_r(label_x)}" y="{baseline + 18}" '
            f'text-anchor="middle">{_date(point.at)}</text>'
        )
    return out


def _marker(point: ChartPoint, px: float, py: float, unit: str, right: float) -> str:
    """The point's shape by its flag, a tooltip saying it in words, a ring and its value
    when it is the current panel's."""
    cx, cy = _r(px), _r(py)
    tip = (
        f"<title>{escape(_date(point.at))} {point.at:%H:%M} UTC: {number(point.value)} "
        f"{escape(unit)}, {escape(point.flag_word)}"
        f"{' · ' + str(escape(point.label)) if point.label else ''}</title>"
    )
    parts: list[str] = []
    if point.current:
        parts.append(f'<circle class="pt-current" cx="{cx}" cy="{cy}" r="13"/>')
    if point.is_critical:
        s = 9
        parts.append(
            f'<path class="pt pt-critical" d="M{cx},{_r(py - s)} L{_r(px + s)},{cy} '
            f'L{cx},{_r(py + s)} L{_r(px - s)},{cy} Z"/>'
            f'<text class="pt-c" x="{cx}" y="{cy}" text-anchor="middle" '
            f'dominant-baseline="central">C</text>'
        )
    elif point.flag in LOW_FLAGS:
        s = 6
        parts.append(
            f'<path class="pt pt-low" d="M{_r(px - s)},{_r(py - s * 0.6)} '
            f'L{_r(px + s)},{_r(py - s * 0.6)} L{cx},{_r(py + s)} Z"/>'
        )
    elif point.flag in HIGH_FLAGS:
        s = 6
        parts.append(
            f'<path class="pt pt-high" d="M{_r(px - s)},{_r(py + s * 0.6)} '
            f'L{_r(px + s)},{_r(py + s * 0.6)} L{cx},{_r(py - s)} Z"/>'
        )
    elif point.flag == "N":
        parts.append(f'<circle class="pt pt-normal" cx="{cx}" cy="{cy}" r="4.5"/>')
    else:
        parts.append(f'<circle class="pt pt-unjudged" cx="{cx}" cy="{cy}" r="4.5"/>')
    if point.current:  # its value beside it, on the side with room
        side = ("start", px + 15) if px + 60 < right else ("end", px - 15)
        parts.append(
            f'<text class="pt-value" x="{_r(side[1])}" y="{_r(py - 8)}" '
            f'text-anchor="{side[0]}">{number(point.value)}</text>'
        )
    kind = "critical" if point.is_critical else point.flag or "none"
    current = ' data-current="true"' if point.current else ""
    return f'<g class="point" data-flag="{escape(kind)}"{current}>{tip}{"".join(parts)}</g>'


def _r(value: float) -> str:
    """A coordinate, rounded to a tenth (a smaller document, the same picture)."""
    return f"{value:.1f}".rstrip("0").rstrip(".")
