"""Accepting a panel: meaning checks and normalisation, with every problem reported at once.

Structure (types, required fields) was checked by the caller; here: which analyte, which unit,
whether the value is possible, ranges, dates and context codes. Errors are keyed by the
request-body path, indexes from 0 (``results.1.unit``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from labinterp.domain.ruleset import Analyte, LoincCode, Ruleset, UnitConversion
from labinterp.domain.types import Context, PanelRejected, RawPanel, RawRange, RawResult, Sex
from labinterp.domain.units import fmt, normalise_unit, quantize

FUTURE_TOLERANCE = dt.timedelta(minutes=5)


class AcceptedResult(NamedTuple):
    """One result accepted. A named tuple rather than a frozen dataclass, as immutable: it is
    built for every result of every panel, and builds four times faster."""

    position: int
    analyte: str
    loinc: str | None
    reported_value: Decimal  # verbatim
    reported_unit: str  # verbatim, as sent
    value: Decimal  # canonical, rounded half-up to the reporting precision
    unit: str  # canonical unit
    reference_range: RawRange | None  # the laboratory's range, in the reported unit, verbatim
    loinc_unit_mismatch: bool = False
    factor: Decimal = Decimal(1)  # canonical = reported x factor
    already_corrected: bool = False  # calcium sent as albumin-corrected (LOINC 29265-6)

    @property
    def reported_canonically(self) -> bool:
        return normalise_unit(self.reported_unit) == normalise_unit(self.unit)

    @property
    def has_lab_range(self) -> bool:
        rr = self.reference_range
        return rr is not None and (rr.low is not None or rr.high is not None)


@dataclass(frozen=True)
class AcceptedPanel:
    collected_at: dt.datetime
    results: tuple[AcceptedResult, ...]
    sex: Sex = "unknown"
    birth_date: dt.date | None = None
    age_years: int | None = None
    hemolyzed: bool = False
    specimen_type: str | None = None
    context: Context = field(default_factory=Context)

    def result(self, analyte: str) -> AcceptedResult | None:
        return next((r for r in self.results if r.analyte == analyte), None)


class _Errors(dict[str, list[str]]):
    def add(self, path: str, message: str) -> None:
        self.setdefault(path, []).append(message)


def _identify(
    raw: RawResult, i: int, ruleset: Ruleset, errors: _Errors
) -> tuple[Analyte | None, LoincCode | None]:
    """The analyte (and LOINC code) a result names; the same words always name the same
    analyte, so each spelling identified without error is kept in the compiled ruleset."""
    words = (raw.analyte, raw.loinc)
    known = ruleset.compiled.identified.get(words)
    if known is not None:
        return known
    before = len(errors)  # no error of results.{i} yet: identifying is the first check
    analyte, loinc = _identify_words(raw, i, ruleset, errors)
    if analyte is not None and len(errors) == before:
        ruleset.compiled.remember_identity(words, (analyte, loinc))
    return analyte, loinc


def _identify_words(
    raw: RawResult, i: int, ruleset: Ruleset, errors: _Errors
) -> tuple[Analyte | None, LoincCode | None]:
    by_name = by_code = None
    path = f"results.{i}"
    if raw.analyte is not None and raw.analyte.strip():
        key = ruleset.alias_index.get(raw.analyte.strip().casefold())
        if key is None:
            errors.add(
                f"{path}.analyte",
                f"unknown analyte '{raw.analyte}'; known: {', '.join(ruleset.analytes)}",
            )
        else:
            by_name = ruleset.analytes[key]
    code = raw.loinc.strip() if raw.loinc is not None else ""
    if code:
        refused = ruleset.refused_loinc.get(code)
        by_code = ruleset.loinc_index.get(code)
        if refused is not None:
            errors.add(
                f"{path}.loinc",
                f"LOINC {code} is {refused.reason}, not a serum result of a supported analyte",
            )
        elif by_code is None:
            errors.add(
                f"{path}.loinc",
                f"unknown LOINC code '{code}'; known: {', '.join(ruleset.loinc_index)}",
            )
    if by_name is None and by_code is None and not code and not (raw.analyte or "").strip():
        errors.add(f"{path}.analyte", "analyte or loinc is required")
    if by_name is not None and by_code is not None and by_code.analyte != by_name.key:
        errors.add(f"{path}.loinc", f"LOINC {code} is {by_code.analyte}, not {by_name.key}")
        return None, None
    analyte = by_name or (ruleset.analytes[by_code.analyte] if by_code is not None else None)
    return analyte, by_code


def _unit(
    raw: RawResult, i: int, analyte: Analyte, ruleset: Ruleset, errors: _Errors
) -> UnitConversion | None:
    if raw.unit is None or not raw.unit.strip():
        allowed = ruleset.compiled.allowed_units[analyte.key]
        errors.add(f"results.{i}.unit", f"unit is required; use {allowed}")
        return None
    conversion = analyte.units.get(normalise_unit(raw.unit))
    if conversion is None:
        allowed = ruleset.compiled.allowed_units[analyte.key]
        errors.add(
            f"results.{i}.unit", f"unit '{raw.unit}' is not valid for {analyte.key}; use {allowed}"
        )
    return conversion


def _value_ok(raw: RawResult, i: int, errors: _Errors) -> bool:
    if raw.value is None:
        errors.add(f"results.{i}.value", "value is required")
        return False
    if not raw.value.is_finite():
        errors.add(f"results.{i}.value", "value must be a number")
        return False
    if raw.value <= 0:
        errors.add(f"results.{i}.value", "value must be greater than zero")
        return False
    return True


def _range_ok(rr: RawRange | None, i: int, errors: _Errors) -> bool:
    if rr is None:
        return True
    path = f"results.{i}.reference_range"
    ok = True
    for name, bound in (("low", rr.low), ("high", rr.high)):
        if bound is not None and (not bound.is_finite() or bound < 0):
            errors.add(path, f"{name} ({bound}) must be a number not below zero")
            ok = False
    if ok and rr.low is not None and rr.high is not None and rr.low > rr.high:
        errors.add(path, f"low ({fmt(rr.low)}) is greater than high ({fmt(rr.high)})")
        ok = False
    return ok


def _accept_result(
    raw: RawResult, i: int, ruleset: Ruleset, errors: _Errors
) -> AcceptedResult | None:
    analyte, loinc = _identify(raw, i, ruleset, errors)
    value_ok = _value_ok(raw, i, errors)
    range_ok = _range_ok(raw.reference_range, i, errors)
    if analyte is None:
        return None
    conversion = _unit(raw, i, analyte, ruleset, errors)
    if conversion is None or not value_ok or not range_ok:
        return None
    assert raw.value is not None and raw.unit is not None
    # Possibility is a property of the true value: compare the exact conversion, not the
    # rounding, and before rounding (1e308 cannot be quantized to reporting precision at all).
    exact = raw.value * conversion.factor
    if not analyte.accepted_low <= exact <= analyte.accepted_high:
        shown = f"{fmt(raw.value)} {raw.unit}"
        if conversion.unit != analyte.canonical_unit and exact.adjusted() < 9:
            places = analyte.precision
            # rounded onto the limit it crossed (10.0004 -> 10.00) would read as inside it
            while places < 12 and (
                analyte.accepted_low <= quantize(exact, places) <= analyte.accepted_high
            ):
                places += 1
            shown += f" ({fmt(quantize(exact, places))} {analyte.canonical_unit})"
        errors.add(
            f"results.{i}.value",
            f"{analyte.key} {shown} is outside the physiologically possible range "
            f"{fmt(analyte.accepted_low)}–{fmt(analyte.accepted_high)} "
            f"{analyte.canonical_unit}",
        )
        return None
    value = quantize(exact, analyte.precision)  # rounded half up to the reporting precision
    return AcceptedResult(
        position=i,
        analyte=analyte.key,
        loinc=loinc.code if loinc else None,
        reported_value=raw.value,
        reported_unit=raw.unit,
        value=value,
        unit=analyte.canonical_unit,
        reference_range=raw.reference_range,
        loinc_unit_mismatch=loinc is not None and loinc.dimension != conversion.dimension,
        factor=conversion.factor,
        already_corrected=loinc is not None and loinc.corrected,
    )


def _context(context: Context, ruleset: Ruleset, errors: _Errors) -> Context:
    if not (context.symptoms or context.factors or context.medications):
        return context  # no code to check (most panels)
    lists: dict[str, tuple[str, ...]] = {}
    for name, singular in (
        ("symptoms", "symptom"),
        ("factors", "factor"),
        ("medications", "medication"),
    ):
        lookup = ruleset.compiled.vocabulary[name]
        accepted: list[str] = []
        for j, given in enumerate(getattr(context, name)):
            code = lookup.get(str(given).strip().casefold())
            if code is None:
                errors.add(
                    f"context.{name}.{j}",
                    f"unknown {singular} '{given}'; allowed: "
                    f"{', '.join(ruleset.vocabularies[name])} (free text goes to context.notes)",
                )
            elif code not in accepted:
                accepted.append(code)
        lists[name] = tuple(accepted)
    return Context(
        twitching=context.twitching,
        symptoms=lists["symptoms"],
        factors=lists["factors"],
        medications=lists["medications"],
        notes=context.notes,
    )


MAX_AGE_DAYS = 130 * 366  # as age_years, which stops at 130


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def accept_panel(panel: RawPanel, ruleset: Ruleset, now: dt.datetime) -> AcceptedPanel:
    """Validate the panel's meaning against ``ruleset`` and normalise it.

    Raises :class:`PanelRejected` with every problem found, keyed by field path.
    """
    errors = _Errors()
    collected_at, now = _aware(panel.collected_at), _aware(now)
    if collected_at - now > FUTURE_TOLERANCE:
        errors.add("collected_at", "collected_at is more than 5 minutes in the future")
    if panel.birth_date is not None:
        if collected_at.date() < panel.birth_date:
            errors.add("collected_at", "collected_at is before the birth date")
        if panel.birth_date > now.date():
            errors.add("patient.birth_date", "birth_date is in the future")
        elif (collected_at.date() - panel.birth_date).days > MAX_AGE_DAYS:
            errors.add(
                "patient.birth_date",
                f"birth_date {panel.birth_date.isoformat()} makes the patient older than "
                "130 years at collection",
            )
    if not panel.results:
        errors.add("results", "at least one result is required")
    accepted: list[AcceptedResult] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(panel.results):
        result = _accept_result(raw, i, ruleset, errors)
        if result is None:
            continue
        if result.analyte in seen:
            errors.add(
                f"results.{i}.analyte",
                f"duplicate analyte {result.analyte} (also results.{seen[result.analyte]})",
            )
            continue
        seen[result.analyte] = i
        accepted.append(result)
    context = _context(panel.context, ruleset, errors)
    if errors:
        raise PanelRejected(dict(errors))
    return AcceptedPanel(
        collected_at=collected_at,
        results=tuple(accepted),
        sex=panel.sex,
        birth_date=panel.birth_date,
        age_years=panel.age_years,
        hemolyzed=panel.hemolyzed,
        specimen_type=panel.specimen_type,
        context=context,
    )
