"""A ruleset: the numbers, their sources and the vocabularies, as immutable values.

Built and validated by :mod:`labinterp.rulesets` from ``reference_ranges/*.yaml``; the engine
only reads it. Everything is a frozen dataclass, a tuple or a read-only mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from labinterp.domain.ages import AgeBound

if TYPE_CHECKING:
    from labinterp.domain.compiled import CompiledRuleset

Dimension = Literal["mass", "substance"]
BandSex = Literal["any", "female", "male"]


class RulesetError(Exception):
    """A ruleset file is malformed. The message names the file and the line of the node."""


def frozen_map(data: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True)
class Source:
    key: str
    label: str
    citation: str
    url: str | None = None


@dataclass(frozen=True)
class UnitConversion:
    unit: str  # display spelling, e.g. "mg/dL"
    factor: Decimal  # canonical = reported x factor
    dimension: Dimension
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoincCode:
    code: str
    analyte: str
    name: str
    dimension: Dimension
    corrected: bool = False  # 29265-6: calcium already corrected for albumin
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class RefusedLoinc:
    code: str
    reason: str
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Band:
    """An interval for an age span [age_min, age_max) and a sex; low/high may be open."""

    low: Decimal | None
    high: Decimal | None
    sources: tuple[str, ...]
    sex: BandSex = "any"
    age_min: AgeBound | None = None
    age_max: AgeBound | None = None
    line: int = field(default=0, compare=False)  # where it was written, for messages

    def population(self) -> str:
        """'18–59 y', '≥ 6 mo', 'all ages' — for explanations."""
        from labinterp.domain.ages import describe_age_span

        text = describe_age_span(self.age_min, self.age_max)
        return text if self.sex == "any" else f"{self.sex}, {text}"


@dataclass(frozen=True)
class GradeStep:
    """Grade ``grade`` applies when the value is below ``below`` / above ``above`` (strictly);
    a step with neither is the fallback. ``symptom_set``/``symptom_grade`` raise the grade when
    a symptom of the set is reported (hypokalemia grade 2)."""

    grade: int
    below: Decimal | None = None
    above: Decimal | None = None
    symptom_set: str | None = None
    symptom_grade: int | None = None


@dataclass(frozen=True)
class GradeTable:
    steps: tuple[GradeStep, ...]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class DecisionBand:
    """A guideline band: value < below, from <= value, value <= to, value > above (all given
    bounds must hold). ``confirm_with`` names the analyte that decides an indeterminate band
    (B12 133–258 pmol/L: methylmalonic acid)."""

    code: str
    sources: tuple[str, ...]
    below: Decimal | None = None
    from_: Decimal | None = None
    to: Decimal | None = None
    above: Decimal | None = None
    confirm_with: str | None = None

    def contains(self, value: Decimal) -> bool:
        return (
            (self.below is None or value < self.below)
            and (self.from_ is None or value >= self.from_)
            and (self.to is None or value <= self.to)
            and (self.above is None or value > self.above)
        )


@dataclass(frozen=True)
class Decision:
    adequate: Band  # also the result's own interval when no laboratory range is given
    bands: tuple[DecisionBand, ...]
    age_min: AgeBound | None = None
    age_max: AgeBound | None = None


@dataclass(frozen=True)
class AlbuminCorrection:
    albumin_analyte: str
    below: Decimal
    reference: Decimal
    factor: Decimal
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Analyte:
    key: str
    display: str
    canonical_unit: str
    precision: int
    units: Mapping[str, UnitConversion]  # normalised spelling -> conversion
    loinc: tuple[LoincCode, ...]
    accepted_low: Decimal
    accepted_high: Decimal
    accepted_sources: tuple[str, ...]
    intervals: tuple[Band, ...] = ()
    critical: tuple[Band, ...] = ()
    finding_low: str | None = None
    finding_high: str | None = None
    grading: Mapping[str, GradeTable] = field(default_factory=frozen_map)
    decision: Decision | None = None
    albumin_correction: AlbuminCorrection | None = None
    aliases: tuple[str, ...] = ()
    decided_by: str | None = None  # total calcium: ionized calcium decides when measured

    def unit_names(self) -> tuple[str, ...]:
        """Accepted units in display spelling, canonical first."""
        seen: list[str] = []
        for conversion in self.units.values():
            if conversion.unit not in seen:
                seen.append(conversion.unit)
        return tuple(seen)


def finding_codes(analytes: Mapping[str, Analyte]) -> set[str]:
    """Every finding code the analytes can produce: their low, high and decision-band codes."""
    codes: set[str] = set()
    for analyte in analytes.values():
        codes.update(c for c in (analyte.finding_low, analyte.finding_high) if c)
        if analyte.decision:
            codes.update(band.code for band in analyte.decision.bands)
    return codes


@dataclass(frozen=True)
class RedFlagRule:
    code: str
    detail: str
    urgent: bool
    sources: tuple[str, ...]
    twitching_days_over: int | None = None
    twitching_sites_over: int | None = None
    any_symptom: tuple[str, ...] = ()
    requires_twitching: bool = False


@dataclass(frozen=True)
class FactorRelation:
    relates_to: tuple[str, ...]  # finding codes, note codes, group names or "twitching"
    detail: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class FollowUpRule:
    code: str
    reason: str
    sources: tuple[str, ...]
    any_finding: tuple[str, ...] = ()
    not_measured: tuple[str, ...] = ()
    any_red_flag: tuple[str, ...] = ()  # "*" = any
    any_urgent_red_flag: bool = False
    by_mechanism: bool = False  # requested by the calcium or hemolysis logic


@dataclass(frozen=True)
class NoteRule:
    code: str
    detail: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Hemolysis:
    possibly_spurious: tuple[str, ...]
    follow_up: str
    follow_up_analytes: tuple[str, ...]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Severity:
    by_grade: Mapping[int, str]
    critical_at_least: str
    ungraded_default: str
    ungraded: Mapping[str, str]


SEVERITY_ORDER = ("mild", "moderate", "severe", "life_threatening")


@dataclass(frozen=True)
class Ruleset:
    version: str
    title: str
    published: date
    description: str
    sources: Mapping[str, Source]
    analytes: Mapping[str, Analyte]  # in file order
    refused_loinc: Mapping[str, RefusedLoinc]
    vocabularies: Mapping[str, tuple[str, ...]]  # symptoms, factors, medications
    symptom_sets: Mapping[str, tuple[bool, tuple[str, ...]]]  # name -> (twitching, symptoms)
    code_groups: Mapping[str, tuple[str, ...]]
    unknown_age_assume: AgeBound
    severity: Severity
    notes: Mapping[str, NoteRule]
    red_flags: tuple[RedFlagRule, ...]
    contributing_factors: Mapping[str, tuple[FactorRelation, ...]]
    follow_ups: tuple[FollowUpRule, ...]
    hemolysis: Hemolysis
    loinc_index: Mapping[str, LoincCode] = field(default_factory=frozen_map)
    alias_index: Mapping[str, str] = field(default_factory=frozen_map)

    def analyte(self, key: str) -> Analyte:
        return self.analytes[key]

    @cached_property
    def compiled(self) -> CompiledRuleset:
        """This ruleset's lookup structures, built on first use (:mod:`.compiled`)."""
        from labinterp.domain.compiled import CompiledRuleset

        return CompiledRuleset(self)

    def cite(self, keys: tuple[str, ...]) -> str:
        """Short labels of sources, joined: 'Kost 1990; Banner NoCo potassium'."""
        return self.compiled.cite(keys)

    def follow_up_order(self) -> tuple[str, ...]:
        return self.compiled.follow_up_order

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for ``GET /api/v1/rulesets``."""
        return {
            "version": self.version,
            "title": self.title,
            "published": self.published.isoformat(),
            "description": self.description,
            "sources": [
                {"key": s.key, "label": s.label, "citation": s.citation, "url": s.url}
                for s in self.sources.values()
            ],
            "analytes": [
                {
                    "key": a.key,
                    "display": a.display,
                    "canonical_unit": a.canonical_unit,
                    "precision": a.precision,
                    "accepted_units": list(a.unit_names()),
                    "loinc": [c.code for c in a.loinc],
                    "accepted_range": {
                        "low": a.accepted_low,
                        "high": a.accepted_high,
                        "unit": a.canonical_unit,
                    },
                }
                for a in self.analytes.values()
            ],
            "refused_loinc": [
                {"code": r.code, "reason": r.reason} for r in self.refused_loinc.values()
            ],
            "vocabularies": {k: list(v) for k, v in self.vocabularies.items()},
        }
