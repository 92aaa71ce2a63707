"""A ruleset compiled into plain lookup structures, once, for the engine's hot loop.

A :class:`~labinterp.domain.ruleset.Ruleset` is the clinical source as written: bands with
their ages, sexes and sources, vocabularies, follow-up rules. Judging panel after panel asks
it the same questions again and again — which interval and critical limits apply to a
42-year-old woman's potassium, how the sources of a band read, which spelling of a symptom
is which code. :class:`CompiledRuleset` answers each question the first time it is asked
and keeps the answer: a dict lookup from then on. It is built on first use by
``ruleset.compiled`` (once per loaded ruleset: the worker loads its rulesets at start-up)
and holds nothing about any patient or panel. Threads may share it: an answer depends on the
ruleset alone, so two threads asking the same question at once keep equal answers.

Nothing here decides anything the ruleset's own functions do not: every answer kept is the
answer :func:`~labinterp.domain.judging.ruleset_interval` and
:func:`~labinterp.domain.judging.critical_bounds` give, asked once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from labinterp.domain.ages import Age, AgeBound
from labinterp.domain.units import join_or

if TYPE_CHECKING:
    from labinterp.domain.judging import CriticalLimit, Interval, Patient
    from labinterp.domain.ruleset import Analyte, Band, LoincCode, Ruleset
    from labinterp.domain.types import Sex

AgeKey = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
Identity = tuple["Analyte", "LoincCode | None"]
MAX_SPELLINGS = 4096


@dataclass(frozen=True)
class Standard:
    """What judges one analyte's values for one kind of patient: the ruleset's interval (None:
    none applies; ``ambiguous``: the age is too imprecise to choose) and the critical limits,
    canonical and strict (None: no limit on that side)."""

    interval: Interval | None
    ambiguous: bool
    below: CriticalLimit | None
    above: CriticalLimit | None

    def critical(self, value: Decimal) -> CriticalLimit | None:
        if self.below is not None and value < self.below.value:
            return self.below
        if self.above is not None and value > self.above.value:
            return self.above
        return None


def _bounds(ruleset: Ruleset) -> list[AgeBound]:
    """Every age at which some band, critical limit or decision band of the ruleset begins
    or ends."""
    spans: list[tuple[AgeBound | None, AgeBound | None]] = []
    for analyte in ruleset.analytes.values():
        bands: tuple[Band, ...] = analyte.intervals + analyte.critical
        spans += [(b.age_min, b.age_max) for b in bands]
        if analyte.decision is not None:
            d = analyte.decision
            spans += [(d.age_min, d.age_max), (d.adequate.age_min, d.adequate.age_max)]
    return [bound for span in spans for bound in span if bound is not None]


class CompiledRuleset:
    """Lookups over one ruleset; see the module's text."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        bounds = _bounds(ruleset)
        # An age is placed against a band by comparing its possible days, months or years
        # with the band's bounds in that unit; beyond the largest bound of a unit, the exact
        # number changes no placement. So ages capped there are the same patient to every
        # band of the ruleset, and there are few of them (days <= 7, months <= 6, ...).
        self._caps = tuple(
            max((b.value for b in bounds if b.unit == unit), default=0) for unit in ("d", "mo", "y")
        )
        self._standards: dict[tuple[str, AgeKey, Sex], Standard] = {}
        self._citations: dict[tuple[str, ...], str] = {}
        # (age in years or None, sex) -> the patient (judging.patient_of); no birth date
        self.patients: dict[tuple[int | None, str], Patient] = {}
        # (analyte, loinc) as a sender wrote them -> what they identify, for spellings that
        # identified an analyte without any error (acceptance._identify)
        self.identified: dict[tuple[str | None, str | None], Identity] = {}
        self.allowed_units = {
            key: join_or(analyte.unit_names()) for key, analyte in ruleset.analytes.items()
        }
        # symptoms, factors, medications: any capitalisation -> the code
        self.vocabulary = {
            name: {code.casefold(): code for code in codes}
            for name, codes in ruleset.vocabularies.items()
        }
        # the rules that can raise a red flag with neither twitching nor a symptom reported
        self.red_flags_without_context = tuple(
            rule
            for rule in ruleset.red_flags
            if not rule.any_symptom
            and not rule.requires_twitching
            and rule.twitching_days_over is None
            and rule.twitching_sites_over is None
        )
        # the rules that can ask for a follow-up with no finding, red flag or request
        self.follow_ups_without_cause = tuple(
            rule
            for rule in ruleset.follow_ups
            if not (rule.by_mechanism or rule.any_finding or rule.any_red_flag)
            and not rule.any_urgent_red_flag
        )
        order: list[str] = []
        for rule in ruleset.follow_ups:
            if rule.code not in order:
                order.append(rule.code)
        self.follow_up_order = tuple(order)

    def remember_identity(self, words: tuple[str | None, str | None], found: Identity) -> None:
        if len(self.identified) < MAX_SPELLINGS:  # senders' spellings: bounded all the same
            self.identified[words] = found

    def age_key(self, age: Age) -> AgeKey:
        """``age`` with each unit capped at the ruleset's largest bound in that unit."""
        days, months, years = self._caps
        return (
            (min(age.days[0], days), min(age.days[1], days)),
            (min(age.months[0], months), min(age.months[1], months)),
            (min(age.years[0], years), min(age.years[1], years)),
        )

    def standard(self, analyte: Analyte, patient: Patient) -> Standard:
        """The interval and critical limits of ``analyte`` for ``patient``."""
        key = (analyte.key, patient.age_key, patient.sex)
        found = self._standards.get(key)
        if found is None:
            from labinterp.domain.judging import standard_of

            found = self._standards[key] = standard_of(analyte, patient, self.ruleset)
        return found

    def cite(self, keys: tuple[str, ...]) -> str:
        """Short labels of sources, joined: 'Kost 1990; Banner NoCo potassium'."""
        text = self._citations.get(keys)
        if text is None:
            sources = self.ruleset.sources
            text = "; ".join(sources[k].label for k in keys if k in sources)
            self._citations[keys] = text
        return text
