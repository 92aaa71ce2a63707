"""Building one analyte of a ruleset from its document, with every check that names a line."""

from __future__ import annotations

import itertools
from decimal import Decimal

from labinterp.domain.ages import AgeBound
from labinterp.domain.ruleset import (
    AlbuminCorrection,
    Analyte,
    Band,
    Decision,
    DecisionBand,
    GradeStep,
    GradeTable,
    LoincCode,
    UnitConversion,
    frozen_map,
)
from labinterp.domain.units import normalise_unit
from labinterp.rulesets.schema_tools import Checker, Map
from labinterp.rulesets.unit_index import UnitIndex, ucum_disagreements
from labinterp.ucum import plain, read_unit

ANALYTE_KEYS = (
    "display",
    "canonical_unit",
    "precision",
    "units",
    "loinc",
    "accepted_range",
    "intervals",
    "critical",
    "findings",
    "grading",
    "decision",
    "albumin_correction",
    "aliases",
    "decided_by",
    "source",
)


def sources_of(node: Map, inherited: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = node.get("source")
    if value is None:
        return inherited
    return (value,) if isinstance(value, str) else tuple(value)


def span_text(low: AgeBound | None, high: AgeBound | None) -> str:
    """How a band is written in validation messages: '0–7 d', '7 d–18 y', '≥ 18 y'."""
    if low is None and high is None:
        return "all ages"
    if high is None:
        return f"≥ {low}"
    if low is None:
        return f"< {high}"
    if low.unit == high.unit:
        return f"{low.value}–{high}"
    return f"{low}–{high}"


def _age_span(check: Checker, node: Map, what: str) -> tuple[AgeBound | None, AgeBound | None]:
    raw = node.get("age")
    if raw is None:
        return None, None
    seq = check.sequence(raw, node.line_of("age"), f"{what}: age")
    if len(seq) != 2:
        check.fail(node.line_of("age"), f"{what}: age must be [min, max] (null for open)")
    bounds: list[AgeBound | None] = []
    for i, item in enumerate(seq):
        if item is None:
            bounds.append(None)
            continue
        try:
            bounds.append(AgeBound.parse(str(item)))
        except ValueError as exc:
            check.fail(seq.line_of(i), f"{what}: {exc}")
    low, high = bounds
    if low is not None and high is not None and low.approx_days() >= high.approx_days():
        check.fail(node.line_of("age"), f"{what}: age {low} is not before {high}")
    return low, high


def _band(check: Checker, node: Map, what: str, inherited: tuple[str, ...]) -> Band:
    check.keys(node, what, optional=("age", "sex", "low", "high", "source"))
    sex = node.get("sex", "any")
    if sex not in ("any", "female", "male"):
        check.fail(node.line_of("sex"), f"{what}: sex must be any, female or male, not {sex!r}")
    low = check.optional_number(node, "low", what)
    high = check.optional_number(node, "high", what)
    if low is None and high is None:
        check.fail(node.line, f"{what} needs low, high or both")
    if low is not None and high is not None and low > high:
        check.fail(node.line_of("low"), f"{what}: low ({low}) is greater than high ({high})")
    age_min, age_max = _age_span(check, node, what)
    return Band(
        low=low,
        high=high,
        sources=sources_of(node, inherited),
        sex=sex,
        age_min=age_min,
        age_max=age_max,
        line=node.line,
    )


def check_band_layout(check: Checker, bands: tuple[Band, ...], what: str) -> None:
    """Bands of the same sex must neither overlap nor leave gaps between them."""
    for sex in ("any", "female", "male"):
        same = sorted(
            (b for b in bands if b.sex == sex),
            key=lambda b: b.age_min.approx_days() if b.age_min else -1.0,
        )
        for before, after in itertools.pairwise(same):
            after_text = span_text(after.age_min, after.age_max)
            before_text = span_text(before.age_min, before.age_max)
            if before.age_max is None or after.age_min is None:
                check.fail(after.line, f"{what} band {after_text} overlaps {before_text}")
            elif after.age_min.same_point(before.age_max):
                continue
            elif after.age_min.approx_days() < before.age_max.approx_days():
                check.fail(after.line, f"{what} band {after_text} overlaps {before_text}")
            else:
                check.fail(after.line, f"{what} band {after_text} leaves a gap after {before_text}")


def _bands(
    check: Checker, node: Map, key: str, what: str, inherited: tuple[str, ...]
) -> tuple[Band, ...]:
    raw = node.get(key)
    if raw is None:
        return ()
    seq = check.sequence(raw, node.line_of(key), f"analyte {what} {key}")
    kind = what if key == "intervals" else f"{what} critical"
    bands = tuple(
        _band(check, check.mapping(item, seq.line_of(i), f"{kind} band"), f"{kind} band", inherited)
        for i, item in enumerate(seq)
    )
    check_band_layout(check, bands, kind)
    return bands


def _units(
    check: Checker,
    node: Map,
    key: str,
    canonical: str,
    unit_table: dict[str, tuple[str, str]],
    inherited: tuple[str, ...],
) -> UnitIndex:
    """Normalised spelling (and alias) -> conversion; the canonical unit has factor 1. Any
    other UCUM unit of a listed unit's kind is resolved on lookup (unit_index.py)."""

    def known(name: str, line: int) -> tuple[str, str]:
        entry = unit_table.get(normalise_unit(name))
        if entry is None:
            check.fail(line, f"analyte {key}: unknown unit '{name}'; add it to the units table")
        return entry

    display, dimension = known(canonical, node.line_of("canonical_unit"))
    conversions = {display: UnitConversion(display, Decimal(1), dimension, ())}  # type: ignore[arg-type]
    raw = node.get("units") or Map()
    units = check.mapping(raw, node.line_of("units"), f"analyte {key}: units")
    for name, spec in units.items():
        line = units.line_of(name)
        display, dimension = known(name, line)
        spec = check.mapping(spec, line, f"analyte {key} unit {name}")
        check.keys(spec, f"analyte {key} unit {name}", optional=("factor", "source"))
        if "factor" in spec:
            factor = check.number(spec, "factor", f"analyte {key} unit {name}", positive=True)
        else:  # a unit of a kind already listed: UCUM knows the factor (g/dL = 10 x g/L)
            factor = _ucum_factor(check, line, f"analyte {key} unit {name}", display, conversions)
        if display in conversions:
            check.fail(line, f"analyte {key}: unit {name} is listed twice")
        conversions[display] = UnitConversion(
            display,
            factor,
            dimension,  # type: ignore[arg-type]
            sources_of(spec, inherited),
        )
    index: dict[str, UnitConversion] = {}  # canonical first, then in the file's order
    for display, conversion in conversions.items():
        for norm, (name, _dimension) in unit_table.items():
            if name == display:
                index[norm] = conversion
    for problem in ucum_disagreements(index):
        check.fail(node.line_of("units"), f"analyte {key}: {problem}")
    return UnitIndex(index)


def _ucum_factor(
    check: Checker, line: int, what: str, unit: str, known: dict[str, UnitConversion]
) -> Decimal:
    """The factor of ``unit`` through a unit of its kind listed before it (the canonical unit
    first): only mass <-> substance and equivalents <-> moles need a factor in the file."""
    read = read_unit(unit)
    for conversion in known.values():
        other = read_unit(conversion.unit)
        if read is not None and other is not None and read.kind == other.kind:
            return plain(read.factor_to(other) * conversion.factor)
    check.fail(
        line,
        f"{what}: no factor, and no unit of its kind before it to convert through with UCUM; "
        "give its factor",
    )


def _grading(
    check: Checker, node: Map, key: str, codes: set[str], symptom_sets: set[str]
) -> dict[str, GradeTable]:
    raw = node.get("grading")
    if raw is None:
        return {}
    grading = check.mapping(raw, node.line_of("grading"), f"analyte {key}: grading")
    tables: dict[str, GradeTable] = {}
    for code, table in grading.items():
        what = f"analyte {key} grading {code}"
        if code not in codes:
            check.fail(grading.line_of(code), f"{what}: '{code}' is not a finding of {key}")
        table = check.mapping(table, grading.line_of(code), what)
        check.keys(table, what, required=("grades", "source"))
        seq = check.sequence(table["grades"], table.line_of("grades"), what)
        steps: list[GradeStep] = []
        for i, item in enumerate(seq):
            step = check.mapping(item, seq.line_of(i), what)
            check.keys(
                step, what, required=("grade",), optional=("below", "above", "with_symptoms")
            )
            grade = check.integer(step, "grade", what)
            if grade not in (1, 2, 3, 4, 5):
                check.fail(step.line_of("grade"), f"{what}: grade must be 1 to 5")
            symptom_set = symptom_grade = None
            if "with_symptoms" in step:
                ws = check.mapping(step["with_symptoms"], step.line_of("with_symptoms"), what)
                check.keys(ws, what, required=("set", "grade"))
                symptom_set = check.members(ws, "set", what, symptom_sets, "symptom set")[0]
                symptom_grade = check.integer(ws, "grade", what)
            steps.append(
                GradeStep(
                    grade,
                    check.optional_number(step, "below", what),
                    check.optional_number(step, "above", what),
                    symptom_set,
                    symptom_grade,
                )
            )
        if not steps or steps[-1].below is not None or steps[-1].above is not None:
            check.fail(seq.line, f"{what}: the last grade must be the fallback (no below/above)")
        tables[code] = GradeTable(tuple(steps), sources_of(table))
    return tables


def _decision(check: Checker, node: Map, key: str) -> Decision | None:
    raw = node.get("decision")
    if raw is None:
        return None
    what = f"analyte {key} decision"
    decision = check.mapping(raw, node.line_of("decision"), what)
    check.keys(decision, what, required=("adequate", "bands"), optional=("age", "source"))
    inherited = sources_of(decision)
    adequate = _band(
        check,
        check.mapping(decision["adequate"], decision.line_of("adequate"), what),
        f"{what} adequate",
        inherited,
    )
    age_min, age_max = _age_span(check, decision, what)
    seq = check.sequence(decision["bands"], decision.line_of("bands"), what)
    bands: list[DecisionBand] = []
    for i, item in enumerate(seq):
        band = check.mapping(item, seq.line_of(i), what)
        check.keys(
            band,
            what,
            required=("code",),
            optional=("below", "from", "to", "above", "confirm_with", "source"),
        )
        bands.append(
            DecisionBand(
                code=check.text(band, "code", what),
                sources=sources_of(band, inherited),
                below=check.optional_number(band, "below", what),
                from_=check.optional_number(band, "from", what),
                to=check.optional_number(band, "to", what),
                above=check.optional_number(band, "above", what),
                confirm_with=check.optional_text(band, "confirm_with", what),
            )
        )
    return Decision(adequate, tuple(bands), age_min, age_max)


def _loinc(check: Checker, node: Map, key: str) -> tuple[LoincCode, ...]:
    raw = check.mapping(node.get("loinc") or Map(), node.line_of("loinc"), f"analyte {key} loinc")
    codes = []
    for code, spec in raw.items():
        what = f"analyte {key} LOINC {code}"
        spec = check.mapping(spec, raw.line_of(code), what)
        check.keys(spec, what, required=("name", "dimension"), optional=("corrected", "source"))
        dimension = spec["dimension"]
        if dimension not in ("mass", "substance"):
            check.fail(spec.line_of("dimension"), f"{what}: dimension must be mass or substance")
        codes.append(
            LoincCode(
                str(code),
                key,
                check.text(spec, "name", what),
                dimension,
                check.flag(spec, "corrected", what),
                sources_of(spec),
            )
        )
    return tuple(codes)


def build_analyte(
    check: Checker,
    key: str,
    node: Map,
    unit_table: dict[str, tuple[str, str]],
    symptom_sets: set[str],
) -> Analyte:
    what = f"analyte {key}"
    check.keys(
        node,
        what,
        required=(
            "display",
            "canonical_unit",
            "precision",
            "loinc",
            "accepted_range",
            "findings" if "decision" not in node else "decision",
        ),
        optional=ANALYTE_KEYS,
    )
    inherited = sources_of(node)
    precision = check.integer(node, "precision", what)
    if not 0 <= precision <= 6:
        check.fail(node.line_of("precision"), f"{what}: precision must be 0 to 6")
    canonical = check.text(node, "canonical_unit", what)
    units = _units(check, node, key, canonical, unit_table, inherited)
    accepted = check.mapping(node["accepted_range"], node.line_of("accepted_range"), what)
    check.keys(accepted, f"{what} accepted_range", required=("low", "high"), optional=("source",))
    low = check.number(accepted, "low", f"{what} accepted_range", positive=True)
    high = check.number(accepted, "high", f"{what} accepted_range", positive=True)
    if low > high:
        check.fail(
            accepted.line_of("low"),
            f"{what} accepted_range: low ({low}) is greater than high ({high})",
        )
    findings = check.mapping(node.get("findings") or Map(), node.line_of("findings"), what)
    check.keys(findings, f"{what} findings", optional=("low", "high"))
    finding_low, finding_high = findings.get("low"), findings.get("high")
    codes = {c for c in (finding_low, finding_high) if isinstance(c, str)}
    correction = None
    if "albumin_correction" in node:
        ac = check.mapping(node["albumin_correction"], node.line_of("albumin_correction"), what)
        check.keys(
            ac,
            f"{what} albumin_correction",
            required=("albumin_analyte", "below", "reference", "factor", "source"),
        )
        correction = AlbuminCorrection(
            check.text(ac, "albumin_analyte", what),
            check.number(ac, "below", what),
            check.number(ac, "reference", what),
            check.number(ac, "factor", what),
            sources_of(ac),
        )
    aliases = check.texts(node, "aliases", what)
    return Analyte(
        key=key,
        display=check.text(node, "display", what),
        canonical_unit=canonical,
        precision=precision,
        units=units,
        loinc=_loinc(check, node, key),
        accepted_low=low,
        accepted_high=high,
        accepted_sources=sources_of(accepted, inherited),
        intervals=_bands(check, node, "intervals", key, inherited),
        critical=_bands(check, node, "critical", key, inherited),
        finding_low=finding_low,
        finding_high=finding_high,
        grading=frozen_map(_grading(check, node, key, codes, symptom_sets)),
        decision=_decision(check, node, key),
        albumin_correction=correction,
        aliases=aliases,
        decided_by=check.optional_text(node, "decided_by", what),
    )
