"""How the review pages word and lay out what the services return: numbers, times, flags,
intervals, and a panel's results merged with its findings. No Flask here: the blueprint
registers these as Jinja filters and globals.

Pages render from the same service results as the API. Those are mappings today and become
objects (services/reading.py's views) later; :func:`get` reads a field of either, as Jinja's
dot access does in the templates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from labinterp.domain import Priority
from labinterp.web.charts import CRITICAL_FLAGS, number

# a result's flag as a word, an arrow and the letters (WCAG 1.4.1: never colour alone)
FLAG_LABELS = {
    "N": ("Normal", ""),
    "L": ("Low", "↓"),
    "H": ("High", "↑"),
    "LL": ("Critically low", "↓↓"),
    "HH": ("Critically high", "↑↑"),
    "IND": ("No interval, not judged", "?"),
}
PRIORITY_ICONS = {Priority.CRITICAL: "◆", Priority.URGENT: "▲", Priority.ROUTINE: "●"}
_WORD_CASE = {"d": "D", "b12": "B12", "mma": "MMA", "pth": "PTH", "ckd": "CKD", "ecg": "ECG"}
_MISSING = object()


def get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a service result, whether it is a mapping or an object."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    value = getattr(obj, name, _MISSING)
    return default if value is _MISSING else value


def words(code: Any) -> str:
    """A code as words: vitamin_d_insufficiency -> vitamin D insufficiency."""
    return " ".join(_WORD_CASE.get(part, part) for part in str(code).split("_"))


def decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None


def num(value: Any) -> str:
    """A stored value as written: 0.70 stays 0.70, 35 stays 35."""
    as_decimal = decimal(value)
    return "" if as_decimal is None else number(as_decimal)


def when(value: Any) -> str:
    """A moment in UTC, as a clinician reads it: 21 Nov 2026 07:05 UTC."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return f"{value.day} {value:%b %Y %H:%M} UTC"
    return f"{value.day} {value:%b %Y}"


def when_short(value: Any) -> str:
    """21 Nov 2026 07:05 (the column says UTC)."""
    return when(value).removesuffix(" UTC")


def when_date(value: dt.datetime) -> str:
    return when(value).rsplit(" ", 2)[0]


def when_time(value: dt.datetime) -> str:
    return " ".join(when(value).rsplit(" ", 2)[1:])


def flag_label(code: Any) -> str:
    return FLAG_LABELS.get(str(code), ("Not interpreted", ""))[0]


def flag_arrow(code: Any) -> str:
    return FLAG_LABELS.get(str(code), ("", ""))[1]


def interval(rr: Any) -> str:
    """A reference interval with its unit: 3.5–5.1 mmol/L, ≥ 259 pmol/L; empty for none."""
    if not rr:
        return ""
    low, high, unit = num(get(rr, "low")), num(get(rr, "high")), get(rr, "unit") or ""
    if low and high:
        text = f"{low}–{high}"
    elif low:
        text = f"≥ {low}"
    elif high:
        text = f"≤ {high}"
    else:
        text = str(get(rr, "text") or "")
    return f"{text} {unit}".strip()


def interval_source(rr: Any, ruleset: str | None) -> str:
    source = get(rr, "source")
    if source == "lab":
        return "the laboratory's range"
    if source == "ruleset":
        return f"ruleset {ruleset}" if ruleset else "the ruleset"
    return str(source or "")


def critical_limit(limit: Any) -> str:
    """'> 6.2 mmol/L (Kost 1990)'; 'Not recorded' without one (research P3)."""
    if not limit:
        return "Not recorded"
    sign = ">" if get(limit, "direction") == "above" else "<"
    source = get(limit, "source")
    return f"{sign} {num(get(limit, 'value'))} {get(limit, 'unit') or ''}".strip() + (
        f" ({source})" if source else ""
    )


@dataclass
class ResultLine:
    """One row of the panel's results table: a finding, or a result that has none."""

    analyte: str
    value: Any
    unit: str
    reported: Any  # {value, unit} as the clinic sent it, or None when the unit is the same
    flag: str | None
    reference_range: Any
    finding: Any = None  # the finding's mapping: code, grade, severity, explanation, source …
    critical: bool = False
    possibly_spurious: bool = False
    more: list[Any] = field(default_factory=list)  # other findings of the same analyte

    @property
    def flag_class(self) -> str:
        if self.critical:
            return "critical"
        if self.flag in ("L", "H"):
            return "abnormal"
        return "unjudged" if self.flag == "IND" else "normal"


def result_lines(interpretation: Any) -> list[ResultLine]:
    """The interpretation's findings, then its results that have none: critical first, then
    the graver findings, then unjudged results, then normal ones."""
    if interpretation is None:
        return []
    results = list(get(interpretation, "results") or [])
    findings = list(get(interpretation, "findings") or [])
    lines: list[ResultLine] = []
    by_analyte: dict[str, ResultLine] = {}
    for finding in findings:
        analyte = str(get(finding, "analyte"))
        if analyte in by_analyte:
            by_analyte[analyte].more.append(finding)
            continue
        line = ResultLine(
            analyte=analyte,
            value=get(finding, "value"),
            unit=str(get(finding, "unit") or ""),
            reported=_reported(finding),
            flag=get(finding, "interpretation"),
            reference_range=get(finding, "reference_range"),
            finding=finding,
            critical=bool(get(finding, "critical")),
            possibly_spurious=bool(get(finding, "possibly_spurious")),
        )
        by_analyte[analyte] = line
        lines.append(line)
    for result in results:
        analyte = str(get(result, "analyte"))
        if analyte in by_analyte:
            continue
        lines.append(
            ResultLine(
                analyte=analyte,
                value=get(result, "value"),
                unit=str(get(result, "unit") or ""),
                reported=_reported(result),
                flag=get(result, "interpretation"),
                reference_range=get(result, "reference_range"),
                critical=bool(get(result, "critical"))
                or get(result, "interpretation") in CRITICAL_FLAGS,
            )
        )
    return sorted(lines, key=_gravity)


def _gravity(line: ResultLine) -> tuple[int, int, int]:
    finding = line.finding
    grade = int(get(finding, "grade") or 0)
    severity = {"severe": 3, "moderate": 2, "mild": 1}.get(str(get(finding, "severity")), 0)
    if line.critical:
        rank = 0
    elif finding is not None:
        rank = 1
    elif line.flag in ("L", "H"):
        rank = 2
    elif line.flag != "N":
        rank = 3
    else:
        rank = 4
    return rank, -grade, -severity


def _reported(item: Any) -> Any:
    """The value as reported, when it was converted to another unit (else None)."""
    reported = get(item, "reported")
    if reported is None or get(reported, "unit") == get(item, "unit"):
        return None
    return reported


def critical_findings(interpretation: Any) -> list[Any]:
    return [f for f in get(interpretation, "findings") or [] if get(f, "critical")]


def timeline(interpretations: Iterable[Any], reviews: Iterable[Any]) -> list[dict[str, Any]]:
    """Interpretations and reviews as one history, newest first (research P6)."""
    events: list[dict[str, Any]] = [
        {
            "at": get(i, "created_at"),
            "kind": "interpretation",
            "event": f"Interpreted (revision {get(i, 'revision')})",
            "detail": f"ruleset {get(i, 'ruleset')} · {get(i, 'status')} · "
            f"{get(i, 'priority')} priority",
            "by": "labinterp",
        }
        for i in interpretations
    ]
    events += [
        {
            "at": get(r, "created_at"),
            "kind": "review",
            "event": f"Reviewed: {words(get(r, 'decision'))}",
            "detail": get(r, "note") or "",
            "by": person(get(r, "reviewer")),
        }
        for r in reviews
    ]
    return sorted(events, key=lambda e: e["at"], reverse=True)


def person(actor_name: Any) -> str:
    """user:ana@clinic.example -> ana@clinic.example (the audit trail's actor name)."""
    text = str(actor_name or "")
    return text.split(":", 1)[1] if text.startswith("user:") else text
