"""Judging one result: which interval applies, where the value lies, whether it is critical.

A laboratory range wins over the ruleset's interval and is compared in its own unit against
the value as reported (no rounding); the ruleset's interval is compared against the canonical
value. Bounds are inclusive. Critical limits (canonical, strict) always apply.

A one-sided laboratory range (only a low, or only a high) says nothing about its open side.
Choice: the open side is judged with the ruleset's interval, so a potassium of 2.8 mmol/L sent
with "≤ 5.0" is still low; where the ruleset has no interval for the patient, a value within
the lab's one side cannot be judged on the other and is IND, never normal. Choice: an open side
on which the analyte has no finding (below MMA or homocysteine, above folate or B12) needs no
judging — "≤ 0.40 umol/L" is a complete MMA range, as the ruleset's own one-sided intervals
are — so a value within the lab's side is N there, whatever the age.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from labinterp.domain.acceptance import AcceptedPanel, AcceptedResult
from labinterp.domain.ages import Age, age_from_bound, age_from_years, age_on, place
from labinterp.domain.compiled import AgeKey, Standard
from labinterp.domain.ruleset import Analyte, Band, Ruleset
from labinterp.domain.types import Sex

Code = Literal["N", "L", "H", "LL", "HH", "IND"]
Side = Literal["low", "high"]


@dataclass(frozen=True)
class Patient:
    age: Age
    sex: Sex
    age_known: bool  # False: no birth date or age; the adult band was assumed
    age_years_only: int | None  # known only in whole years (no birth date)
    # the age as the ruleset's bands see it (CompiledRuleset.age_key): what its standards
    # are looked up by
    age_key: AgeKey = ((0, 0), (0, 0), (0, 0))


def patient_of(panel: AcceptedPanel, ruleset: Ruleset) -> Patient:
    if panel.birth_date is not None:
        age = age_on(panel.birth_date, panel.collected_at.date())
        return Patient(age, panel.sex, True, None, ruleset.compiled.age_key(age))
    # known in whole years, or not at all: a few hundred patients, each built once
    key = (panel.age_years, panel.sex)
    patient = ruleset.compiled.patients.get(key)
    if patient is None:
        if panel.age_years is not None:
            age, known = age_from_years(panel.age_years), True
        else:
            age, known = age_from_bound(ruleset.unknown_age_assume), False
        patient = Patient(age, panel.sex, known, panel.age_years, ruleset.compiled.age_key(age))
        ruleset.compiled.patients[key] = patient
    return patient


@dataclass(frozen=True)
class Interval:
    low: Decimal | None
    high: Decimal | None
    unit: str
    source: Literal["ruleset", "lab"]
    citation: str  # short source labels, or "laboratory"
    population: str | None = None  # "≥ 18 y", for explanations

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "unit": self.unit, "source": self.source}

    def text(self) -> str:
        """'0.70–1.10 mmol/L', '≤ 0.40 umol/L', '≥ 259 pmol/L'."""
        if self.low is not None and self.high is not None:
            return f"{self.low}–{self.high} {self.unit}"
        if self.low is not None:
            return f"≥ {self.low} {self.unit}"
        return f"≤ {self.high} {self.unit}"


@dataclass(frozen=True)
class CriticalLimit:
    value: Decimal
    unit: str
    direction: Literal["below", "above"]
    citation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "unit": self.unit,
            "direction": self.direction,
            "source": self.citation,
        }


class Judgement(NamedTuple):
    """A result judged; a named tuple for the reason :class:`AcceptedResult` is one."""

    result: AcceptedResult
    analyte: Analyte
    interval: Interval | None
    code: Code
    side: Side | None  # where the value lies against the interval (None: within or unjudged)
    critical: CriticalLimit | None
    age_ambiguous: bool = False
    # a one-sided laboratory range left the value's side open: judged by the ruleset's
    # interval ("ruleset"), or by nothing ("unjudged")
    open_side: Literal["ruleset", "unjudged"] | None = None
    # the ruleset's interval for this patient, whichever interval judged the value
    ruleset_interval: Interval | None = None

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "position": r.position,
            "analyte": r.analyte,
            "loinc": r.loinc,
            "value": r.value,
            "unit": r.unit,
            "interpretation": self.code,
            "critical": self.critical is not None,
            "reported": {"value": r.reported_value, "unit": r.reported_unit},
            "reference_range": None if self.interval is None else self.interval.to_dict(),
        }


def compare(value: Decimal, low: Decimal | None, high: Decimal | None) -> Side | None:
    """Inclusive bounds: low <= value <= high is within."""
    if low is not None and value < low:
        return "low"
    if high is not None and value > high:
        return "high"
    return None


def select_band(bands: tuple[Band, ...], patient: Patient) -> tuple[Band | None, bool]:
    """The band for the patient's sex (else any sex) and age; (None, True) when the age is
    too imprecise to choose."""
    groups = ([patient.sex] if patient.sex in ("female", "male") else []) + ["any"]
    for sex in groups:
        candidates = [b for b in bands if b.sex == sex]
        placements = [(b, place(patient.age, b.age_min, b.age_max)) for b in candidates]
        inside = [b for b, p in placements if p == "inside"]
        if inside:
            return inside[0], False
        if any(p == "ambiguous" for _, p in placements):
            return None, True
    if patient.sex not in ("female", "male"):
        # sex unknown and no band for any sex: the female and male bands, where they agree
        # (phosphate at 1–5 y), are a band for any sex; where they differ, nothing applies
        by_sex = [
            next(
                (
                    b
                    for b in bands
                    if b.sex == sex and place(patient.age, b.age_min, b.age_max) == "inside"
                ),
                None,
            )
            for sex in ("female", "male")
        ]
        female, male = by_sex
        if female and male and (female.low, female.high) == (male.low, male.high):
            return replace(female, sex="any"), False
    return None, False


def critical_bounds(
    analyte: Analyte, patient: Patient
) -> tuple[Decimal | None, Decimal | None, tuple[str, ...]]:
    band, ambiguous = select_band(analyte.critical, patient)
    if band is not None:
        return band.low, band.high, band.sources
    if not ambiguous:
        return None, None, ()
    # Age too imprecise: the tightest limits of the bands it could fall in (the safe side).
    possible = [
        b for b in analyte.critical if place(patient.age, b.age_min, b.age_max) != "outside"
    ]
    lows = [b.low for b in possible if b.low is not None]
    highs = [b.high for b in possible if b.high is not None]
    sources = tuple(dict.fromkeys(s for b in possible for s in b.sources))
    return (max(lows) if lows else None), (min(highs) if highs else None), sources


def ruleset_interval(
    analyte: Analyte, patient: Patient, ruleset: Ruleset
) -> tuple[Interval | None, bool]:
    if analyte.decision is not None:
        d = analyte.decision
        where = place(patient.age, d.age_min, d.age_max)
        band: Band | None = d.adequate if where == "inside" else None
        ambiguous = where == "ambiguous"
    else:
        band, ambiguous = select_band(analyte.intervals, patient)
    if band is None:
        return None, ambiguous
    population = band.population() if band.age_min or band.age_max or band.sex != "any" else None
    if analyte.decision is not None:
        from labinterp.domain.ages import describe_age_span

        span = describe_age_span(analyte.decision.age_min, analyte.decision.age_max)
        population = None if span == "all ages" else span
    return Interval(
        band.low,
        band.high,
        analyte.canonical_unit,
        "ruleset",
        ruleset.cite(band.sources),
        population,
    ), False


def standard_of(analyte: Analyte, patient: Patient, ruleset: Ruleset) -> Standard:
    """The ruleset's interval and critical limits of ``analyte`` for ``patient``; asked once
    per kind of patient through ``ruleset.compiled.standard``."""
    interval, ambiguous = ruleset_interval(analyte, patient, ruleset)
    low, high, sources = critical_bounds(analyte, patient)
    unit, citation = analyte.canonical_unit, ruleset.cite(sources)
    return Standard(
        interval,
        ambiguous,
        None if low is None else CriticalLimit(low, unit, "below", citation),
        None if high is None else CriticalLimit(high, unit, "above", citation),
    )


def lab_interval(result: AcceptedResult) -> Interval | None:
    rr = result.reference_range
    if rr is None or (rr.low is None and rr.high is None):
        return None
    return Interval(rr.low, rr.high, result.reported_unit, "lab", "laboratory")


def _has_finding(analyte: Analyte, side: Side) -> bool:
    """Whether a value beyond ``side`` of an interval would be a finding of ``analyte``."""
    return (analyte.finding_low if side == "low" else analyte.finding_high) is not None


def _lab_then_ruleset(
    lab_value: Decimal, value: Decimal, lab: Interval, ruleset_iv: Interval | None
) -> tuple[Side | None, Literal["lab", "ruleset"]]:
    """Where a value lies against a laboratory range (``lab_value``, in the range's unit) and,
    on a one-sided range's open side, against the ruleset's interval (``value``, canonical);
    and which of the two decided."""
    side = compare(lab_value, lab.low, lab.high)
    if side is None and ruleset_iv is not None and (lab.low is None or lab.high is None):
        missing: Side = "low" if lab.low is None else "high"
        if compare(value, ruleset_iv.low, ruleset_iv.high) == missing:
            return missing, "ruleset"
    return side, "lab"


def judge(
    result: AcceptedResult, analyte: Analyte, patient: Patient, ruleset: Ruleset
) -> Judgement:
    standard = ruleset.compiled.standard(analyte, patient)
    interval, ambiguous = standard.interval, standard.ambiguous
    by_ruleset_interval = interval
    lab = lab_interval(result)
    side: Side | None = None
    open_side: Literal["ruleset", "unjudged"] | None = None
    if lab is not None:
        side, decided_by = _lab_then_ruleset(result.reported_value, result.value, lab, interval)
        if decided_by == "ruleset":
            open_side = "ruleset"  # the open side, judged by the ruleset's interval
        else:
            missing: Side = "low" if lab.low is None else "high"
            one_sided = lab.low is None or lab.high is None
            if side is None and one_sided and interval is None and _has_finding(analyte, missing):
                open_side = "unjudged"
            interval, ambiguous = lab, False
    elif interval is not None:
        side = compare(result.value, interval.low, interval.high)
    critical = standard.critical(result.value)
    code: Code
    if critical is not None:
        code = "LL" if critical.direction == "below" else "HH"
    elif interval is None or open_side == "unjudged":
        code = "IND"
    else:
        code = "L" if side == "low" else "H" if side == "high" else "N"
    return Judgement(
        result, analyte, interval, code, side, critical, ambiguous, open_side, by_ruleset_interval
    )


def side_of(judgement: Judgement, value: Decimal) -> tuple[Side | None, Interval | None]:
    """Where another canonical ``value`` derived from this result (albumin-corrected calcium)
    lies, judged as the result itself was: against the laboratory's range, converted into its
    unit, and on a one-sided range's open side against the ruleset's interval. Returns the side
    and the interval that decided it (the laboratory's, when the value is within)."""
    ruleset_iv = judgement.ruleset_interval
    lab = lab_interval(judgement.result)
    if lab is None:
        if ruleset_iv is None:
            return None, None
        return compare(value, ruleset_iv.low, ruleset_iv.high), ruleset_iv
    side, decided_by = _lab_then_ruleset(value / judgement.result.factor, value, lab, ruleset_iv)
    return side, ruleset_iv if decided_by == "ruleset" else lab
