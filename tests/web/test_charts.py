"""The trend chart (labinterp/web/charts.py): pure, points in, SVG out."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from labinterp.web.charts import (
    BOTTOM,
    HEIGHT,
    TOP,
    ChartPoint,
    CriticalLine,
    describe,
    trend_svg,
    value_axis,
)

SVG = "{http://www.w3.org/2000/svg}"
D = Decimal


def at(day: int, month: int = 10) -> dt.datetime:
    return dt.datetime(2026, month, day, 8, 0, tzinfo=dt.UTC)


def k(day: int, value: str, flag: str = "N", **extra: object) -> ChartPoint:
    """A potassium result judged against 3.5–5.1 mmol/L."""
    return ChartPoint(at(day), D(value), D("3.5"), D("5.1"), flag, **extra)  # type: ignore[arg-type]


def draw(points: list[ChartPoint], **options: object) -> ET.Element:
    svg = trend_svg(points, name="Potassium", unit="mmol/L", chart_id="t", **options)  # type: ignore[arg-type]
    # our own markup, well-formed XML or this raises
    return ET.fromstring(str(svg))  # noqa: S314


def shapes(root: ET.Element, cls: str) -> list[ET.Element]:
    return [e for e in root.iter() if cls in (e.get("class") or "").split()]


def test_the_chart_is_an_image_with_a_title_and_a_one_sentence_description() -> None:
    root = draw([k(1, "4.2"), k(15, "5.6", "H"), k(29, "6.8", "HH", current=True)])
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "t-title t-desc"
    assert root.find(f"{SVG}title").text == "Potassium over time (mmol/L)"  # type: ignore[union-attr]
    assert root.find(f"{SVG}desc").text == (  # type: ignore[union-attr]
        "3 potassium results from 1 Oct 2026 to 29 Oct 2026, rising from 4.2 to 6.8 mmol/L; "
        "2 of 3 outside the reference interval, 1 critical; the latest is critically high."
    )
    assert [t.text for t in shapes(root, "axis-title")] == ["mmol/L"]


def test_flags_are_told_apart_by_shape_the_current_point_ringed_and_labelled() -> None:
    root = draw(
        [k(1, "4.2"), k(8, "3.2", "L"), k(15, "5.6", "H"), k(22, "7.0", "HH", current=True)]
    )
    points = shapes(root, "point")
    assert [p.get("data-flag") for p in points] == ["N", "L", "H", "critical"]
    [normal] = shapes(root, "pt-normal")
    assert normal.tag == f"{SVG}circle"
    low, high = shapes(root, "pt-low")[0], shapes(root, "pt-high")[0]
    assert low.tag == high.tag == f"{SVG}path"  # triangles: down for low, up for high
    assert _apex_below(low.get("d", "")) and not _apex_below(high.get("d", ""))
    [critical] = shapes(root, "pt-critical")
    assert critical.get("d", "").count("L") == 3  # a diamond: four corners
    assert [t.text for t in shapes(root, "pt-c")] == ["C"]
    assert len(shapes(root, "pt-current")) == 1 and points[3].get("data-current") == "true"
    assert [t.text for t in shapes(root, "pt-value")] == ["7.0"]
    # each point says itself in words too (a tooltip)
    assert "critically high" in (points[3].find(f"{SVG}title").text or "")  # type: ignore[union-attr]


def _apex_below(path: str) -> bool:
    """A triangle whose lone vertex is below the other two points down (SVG y grows down)."""
    ys = [float(y) for y in re.findall(r"[ML][\d.]+,([\d.]+)", path)]
    return ys[2] > ys[0] == ys[1]


def test_the_reference_band_is_shaded_per_point_as_the_interval_changes() -> None:
    """Intervals change over time (a new ruleset, the patient's age): each point's own."""
    root = draw(
        [
            ChartPoint(at(1), D("0.80"), D("0.70"), D("1.10"), "N"),
            ChartPoint(at(20), D("0.72"), D("0.75"), D("1.05"), "L"),
        ]
    )
    bands = shapes(root, "band")
    assert len(bands) == 2
    first, second = (float(b.get("y", 0)) for b in bands)
    heights = [float(b.get("height", 0)) for b in bands]
    assert first < second and heights[0] > heights[1]  # 0.70–1.10 is taller than 0.75–1.05
    # the columns meet halfway between the points
    left = [float(b.get("x", 0)) for b in bands]
    widths = [float(b.get("width", 0)) for b in bands]
    assert left[0] + widths[0] == pytest.approx(left[1], abs=0.2)
    assert len(shapes(root, "band-edge")) == 4  # both edges drawn, not only tinted


def test_a_one_sided_interval_is_shaded_to_the_edge_of_the_plot() -> None:
    """B12 >= 259 pmol/L: no upper limit, so the band reaches the top of the plot."""
    root = draw([ChartPoint(at(1), D("184"), D("259"), None, "L", current=True)])
    [band] = shapes(root, "band")
    assert float(band.get("y", -1)) == TOP
    assert len(shapes(root, "band-edge")) == 1  # only the side that exists
    below = draw([ChartPoint(at(1), D("12"), None, D("15"), "N")])
    [band] = shapes(below, "band")
    assert float(band.get("y", 0)) + float(band.get("height", 0)) == pytest.approx(
        HEIGHT - BOTTOM, abs=0.1
    )


def test_a_point_without_an_interval_has_no_band_and_a_hollow_marker() -> None:
    root = draw([ChartPoint(at(1), D("1.50"), None, None, "IND")])
    assert shapes(root, "band") == []
    assert len(shapes(root, "pt-unjudged")) == 1


def test_a_single_point_is_drawn_centred_with_no_line() -> None:
    root = draw([k(1, "4.2", current=True)])
    assert shapes(root, "line") == []
    [point] = shapes(root, "pt-normal")
    plot = shapes(root, "plot")[0]
    middle = float(plot.get("x", 0)) + float(plot.get("width", 0)) / 2
    assert float(point.get("cx", 0)) == pytest.approx(middle, abs=0.2)
    assert len([t for t in shapes(root, "tick") if "Oct" in (t.text or "")]) == 1
    assert describe([k(1, "4.2")], "Potassium", "mmol/L") == (
        "One potassium result: 4.2 mmol/L on 1 Oct 2026, within the interval."
    )


def test_identical_values_get_a_y_axis_around_them_not_a_flat_line_on_an_edge() -> None:
    values = [D("4.0")] * 3
    root = draw([ChartPoint(at(d), v) for d, v in zip((1, 2, 3), values, strict=True)])
    ys = {float(p.get("cy", 0)) for p in shapes(root, "pt")}
    assert len(ys) == 1
    [y] = ys
    assert TOP + 10 < y < HEIGHT - BOTTOM - 10
    bottom, top, ticks = value_axis([4.0, 4.0])
    assert bottom < 4.0 < top and len(ticks) >= 3
    assert "4.0 mmol/L at the first and the last" in describe(
        [ChartPoint(at(1), D("4.0")), ChartPoint(at(2), D("4.0"))], "Potassium", "mmol/L"
    )


def test_the_y_axis_is_not_forced_to_zero() -> None:
    bottom, top, ticks = value_axis([135.0, 140.0, 145.0])
    assert 120 < bottom < 135 and 145 < top < 160
    assert ticks == sorted(ticks) and ticks[0] == bottom and ticks[-1] == top


def test_the_x_axis_is_the_true_collection_time() -> None:
    """Two results a day apart sit closer than two a month apart."""
    root = draw([k(1, "4.0"), k(2, "4.1"), k(30, "4.2")])
    xs = [float(p.get("cx", 0)) for p in shapes(root, "pt-normal")]
    assert (xs[1] - xs[0]) * 10 < xs[2] - xs[1]


def test_critical_limits_are_dashed_lines_with_a_label() -> None:
    root = draw([k(1, "6.8", "HH")], critical_lines=[CriticalLine(D("6.2"), "critical limit 6.2")])
    assert len(shapes(root, "critical-limit")) == 1
    assert [t.text for t in shapes(root, "critical-label")] == ["critical limit 6.2"]


def test_text_is_escaped() -> None:
    svg = str(
        trend_svg([ChartPoint(at(1), D("1"), label="<b>&")], name="<x>", unit="mg/dL", chart_id="t")
    )
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg and "&lt;x&gt;" in svg


def test_no_points_draw_nothing() -> None:
    assert str(trend_svg([], name="Potassium", unit="mmol/L", chart_id="t")) == ""
