"""A patient's trend of one analyte (reading.patient_trend's points) as the panel page shows
it: the chart (web/charts.py) and the same data as a table."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from markupsafe import Markup

from labinterp.web import display
from labinterp.web.charts import ChartPoint, CriticalLine, describe, trend_svg
from labinterp.web.display import get


@dataclass(frozen=True)
class TrendRow:
    """One row of the table under the chart."""

    point: ChartPoint
    panel_id: Any
    accession: str
    unit: str
    interval: str  # as it judged the value, with its unit (even when not the chart's)
    flag: str | None


@dataclass(frozen=True)
class TrendView:
    analyte: str
    name: str
    unit: str
    svg: Markup
    description: str
    rows: list[TrendRow]  # newest first
    total: int


def trend_view(
    analyte: str,
    name: str,
    points: Sequence[Any],
    total: int,
    current_panel: uuid.UUID,
    critical_findings: Sequence[Any] = (),
) -> TrendView:
    """The chart and table of ``points`` (canonical units), the current panel's point
    ringed, the critical limits this panel crossed for the analyte drawn dashed."""
    unit = str(get(points[-1], "unit") or "") if points else ""
    chart = [_chart_point(p, unit, current_panel) for p in points]
    lines = [
        CriticalLine(
            _decimal(get(limit, "value")),
            f"critical limit {display.num(get(limit, 'value'))}",
        )
        for finding in critical_findings
        if get(finding, "analyte") == analyte
        and (limit := get(finding, "critical_limit"))
        and get(limit, "unit") == unit
        and display.decimal(get(limit, "value")) is not None
    ]
    rows = [
        TrendRow(
            point=cp,
            panel_id=get(p, "panel_id"),
            accession=str(get(p, "accession") or ""),
            unit=str(get(p, "unit") or ""),
            interval=_interval(get(p, "reference_range"), unit),
            flag=get(p, "interpretation"),
        )
        for p, cp in zip(points, chart, strict=True)
    ]
    return TrendView(
        analyte=analyte,
        name=name,
        unit=unit,
        svg=trend_svg(
            chart, name=name, unit=unit, chart_id=f"trend-{analyte}", critical_lines=lines
        ),
        description=describe(chart, name, unit),
        rows=rows[::-1],
        total=total,
    )


def _interval(rr: Any, unit: str) -> str:
    """The interval for the table: its unit only when it is not the chart's."""
    text = display.interval(rr)
    return text.removesuffix(f" {unit}") if unit else text


def _decimal(value: Any) -> Decimal:
    found = display.decimal(value)
    if found is None:  # a stored value or limit is always a number
        raise ValueError(f"not a number: {value!r}")
    return found


def _chart_point(point: Any, unit: str, current_panel: uuid.UUID) -> ChartPoint:
    rr = get(point, "reference_range")
    # an interval in another unit (a laboratory's own range, as reported) is not drawn
    # against canonical values: the table beneath gives it with its unit
    same_unit = rr is not None and get(rr, "unit") == unit
    flag = get(point, "interpretation")
    return ChartPoint(
        at=get(point, "collected_at"),
        value=_decimal(get(point, "value")),
        low=display.decimal(get(rr, "low")) if same_unit else None,
        high=display.decimal(get(rr, "high")) if same_unit else None,
        flag=flag,
        critical=bool(get(point, "critical", False)),
        current=str(get(point, "panel_id")) == str(current_panel),
        label=str(get(point, "accession") or ""),
    )
