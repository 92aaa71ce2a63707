"""Findings: what was found, how severe, and an explanation a clinician can check in one read."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from labinterp.domain.grading import grade, severity
from labinterp.domain.judging import Code, CriticalLimit, Interval, Judgement
from labinterp.domain.ruleset import SEVERITY_ORDER, Ruleset
from labinterp.domain.units import fmt, fmt_display

_UPPER = {"d": "D", "b12": "B12", "mma": "MMA", "pth": "PTH"}


def title(code: str) -> str:
    """'vitamin_d_deficiency' -> 'Vitamin D deficiency'; 'elevated_mma' -> 'Elevated MMA'."""
    text = phrase(code)
    return text[0].upper() + text[1:]


def phrase(code: str) -> str:
    """A code as words inside a sentence: 'vitamin D deficiency', 'check PTH', 'B12 borderline'."""
    return " ".join(_UPPER.get(w, w) for w in code.split("_"))


@dataclass(frozen=True)
class Finding:
    code: str
    analyte: str
    value: Decimal
    unit: str
    reported_value: Decimal
    reported_unit: str
    reference_range: Interval | None
    interpretation: Code
    grade: int | None
    severity: str
    critical: CriticalLimit | None
    possibly_spurious: bool
    explanation: str
    source: str
    position: int = 0
    measured: Decimal | None = None  # corrected calcium: the measured total calcium
    # the value that crossed ``critical`` when it is not this finding's own value
    # ("measured total calcium 1.60 mmol/L (6.4 mg/dL)")
    critical_subject: str | None = None

    @property
    def is_critical(self) -> bool:
        return self.critical is not None

    def rank(self) -> tuple[int, int, int, int]:
        """Most important first: critical, then severity, then grade, then panel order."""
        return (
            0 if self.critical else 1,
            -SEVERITY_ORDER.index(self.severity),
            -(self.grade or 0),
            self.position,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "analyte": self.analyte,
            "value": self.value,
            "unit": self.unit,
            "reported": {"value": self.reported_value, "unit": self.reported_unit},
            "reference_range": None
            if self.reference_range is None
            else self.reference_range.to_dict(),
            "interpretation": self.interpretation,
            "grade": self.grade,
            "severity": self.severity,
            "critical": self.critical is not None,
            "possibly_spurious": self.possibly_spurious,
            "explanation": self.explanation,
            "source": self.source,
        }
        if self.measured is not None:
            out["measured"] = self.measured
        if self.critical is not None:
            out["critical_limit"] = self.critical.to_dict()
        return out


def value_text(j: Judgement, value: Decimal | None = None, joiner: str = " ({})") -> str:
    """'0.45 mmol/L (1.1 mg/dL)': canonical, then as reported; once when reported canonically.
    A derived ``value`` (corrected calcium) is shown converted into the reported unit."""
    r = j.result
    shown = f"{fmt(r.value if value is None else value)} {r.unit}"
    if r.reported_canonically:
        if value is None and r.reported_value != r.value:
            # more decimals than the reporting precision: a lab range judged the value as
            # reported, so say both ("135.5 mmol/L (136 at reporting precision)")
            return f"{fmt(r.reported_value)} {r.unit} ({fmt(r.value)} at reporting precision)"
        return shown
    other = fmt(r.reported_value) if value is None else fmt_display(value / r.factor)
    return shown + joiner.format(f"{other} {r.reported_unit}")


def interval_text(interval: Interval, ruleset: Ruleset, as_reported: bool = True) -> str:
    if interval.source == "lab":
        how = " (compared with the value as reported)" if as_reported else ""
        return f"the laboratory's range {interval.text()}{how}"
    population = f", {interval.population}" if interval.population else ""
    return (
        f"the reference interval {interval.text()}{population} (ruleset {ruleset.version}: "
        f"{interval.citation})"
    )


def limit_text(
    interval: Interval | None, side: str | None, ruleset: Ruleset, as_reported: bool = True
) -> str:
    if interval is None:
        return "has no reference interval for this patient"
    where = interval_text(interval, ruleset, as_reported)
    if side == "low" and interval.low is not None:
        return f"is below {interval.low} {interval.unit}, the lower limit of {where}"
    if side == "high" and interval.high is not None:
        return f"is above {interval.high} {interval.unit}, the upper limit of {where}"
    return f"is within {where}"


def critical_text(critical: CriticalLimit) -> str:
    return (
        f"{critical.direction} the critical limit {critical.value} {critical.unit} "
        f"({critical.citation}), which applies whatever the interval: a critical value"
    )


def source_text(parts: list[str]) -> str:
    return "; ".join(dict.fromkeys(p for p in parts if p))


def interval_source(interval: Interval | None, ruleset: Ruleset) -> str:
    if interval is None:
        return ""
    if interval.source == "lab":
        return "laboratory reference range"
    return f"reference interval per ruleset {ruleset.version} ({interval.citation})"


@dataclass
class FindingDraft:
    """What a mechanism decided; :func:`build_finding` grades and explains it."""

    judgement: Judgement
    code: str
    side: str  # "low" | "high"
    interval: Interval | None
    interpretation: Code
    value: Decimal | None = None  # canonical value judged, when not the result's own
    measured: Decimal | None = None
    critical: CriticalLimit | None = None
    possibly_spurious: bool = False
    graded: bool = True  # False: no grade even if a table exists (value within its interval)
    lead: str | None = None  # replaces the opening "Analyte value …" words
    extra: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    within: bool = False  # the interval judged the value normal (critical only)
    as_reported: bool = True  # a lab range was compared with the reported value itself
    critical_subject: str | None = None  # see Finding.critical_subject


def build_finding(d: FindingDraft, ruleset: Ruleset, symptom_sets: dict[str, str]) -> Finding:
    j = d.judgement
    value = j.result.value if d.value is None else d.value
    table = j.analyte.grading.get(d.code)
    grade_, how = (None, "")
    if table is not None and d.graded:
        grade_, how = grade(table, value, j.result.unit, symptom_sets)
    level = severity(ruleset, d.code, grade_, d.critical is not None)
    lead = d.lead or f"{j.analyte.display} {value_text(j)}"
    limit = limit_text(d.interval, None if d.within else d.side, ruleset, d.as_reported)
    sentence = f"{lead} {limit}"
    if d.critical is not None and d.critical_subject is None:
        sentence += f", and is {critical_text(d.critical)}"
    parts = [sentence + "."]
    if d.critical is not None and d.critical_subject is not None:
        parts.append(f"The {d.critical_subject} is {critical_text(d.critical)}.")
    shown_level = level.replace("_", "-")
    if grade_ is not None:
        parts.append(f"{title(d.code)}: CTCAE v5.0 grade {grade_} ({how}), {shown_level}.")
    else:
        parts.append(f"{title(d.code)} ({shown_level}).")
    parts.extend(d.extra)
    if d.possibly_spurious and d.critical is not None:
        parts.append("Possibly spurious, but a critical value stays critical.")
    sources = [
        table and ruleset.cite(table.sources) if grade_ is not None else "",
        *d.sources,
        interval_source(d.interval, ruleset),
        f"critical limit: {d.critical.citation}" if d.critical else "",
    ]
    return Finding(
        code=d.code,
        analyte=j.result.analyte,
        value=value,
        unit=j.result.unit,
        reported_value=j.result.reported_value,
        reported_unit=j.result.reported_unit,
        reference_range=d.interval,
        interpretation=d.interpretation,
        grade=grade_,
        severity=level,
        critical=d.critical,
        possibly_spurious=d.possibly_spurious,
        explanation=" ".join(parts),
        source=source_text([str(s) for s in sources]),
        position=j.result.position,
        measured=d.measured,
        critical_subject=d.critical_subject,
    )


def generic_draft(j: Judgement) -> FindingDraft | None:
    """Below/above the interval, or beyond a critical limit: the analyte's hypo-/hyper- code."""
    side = j.side
    if j.critical is not None:
        side = "low" if j.critical.direction == "below" else "high"
    if side is None:
        return None
    code = j.analyte.finding_low if side == "low" else j.analyte.finding_high
    if code is None:
        return None
    return FindingDraft(
        j, code, side, j.interval, j.code, critical=j.critical, within=j.side is None
    )


def converted(value: Decimal, factor: Decimal) -> str:
    return fmt_display(value / factor)
