"""Building a :class:`Ruleset` from a line-aware document, validating as it goes.

Checks: unknown and missing keys, a source on every number and only known sources, units
known to the units table, low > high, overlapping or gapped age bands of one sex, codes that
refer to nothing (findings, notes, symptoms, analytes, red flags), note templates.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from labinterp.domain.ages import AgeBound
from labinterp.domain.ruleset import (
    SEVERITY_ORDER,
    Analyte,
    LoincCode,
    RefusedLoinc,
    Ruleset,
    Severity,
    Source,
    finding_codes,
    frozen_map,
)
from labinterp.domain.units import normalise_unit
from labinterp.rulesets.analyte_schema import build_analyte, sources_of
from labinterp.rulesets.ruleset_rules import build_rules  # the context half of the file
from labinterp.rulesets.schema_tools import Checker, Map, require_sources

TOP_KEYS = (
    "version",
    "title",
    "published",
    "description",
    "sources",
    "units",
    "vocabularies",
    "symptom_sets",
    "code_groups",
    "unknown_age",
    "severity",
    "refused_loinc",
    "analytes",
    "notes",
    "red_flags",
    "contributing_factors",
    "follow_up",
    "hemolysis",
)
OPTIONAL_TOP = ("description", "code_groups", "symptom_sets", "refused_loinc")


def _sources(check: Checker, doc: Map) -> dict[str, Source]:
    raw = check.mapping(doc["sources"], doc.line_of("sources"), "sources")
    out: dict[str, Source] = {}
    for key, spec in raw.items():
        what = f"source {key}"
        spec = check.mapping(spec, raw.line_of(key), what)
        check.keys(spec, what, required=("label", "citation"), optional=("url",))
        out[key] = Source(
            key,
            check.text(spec, "label", what),
            check.text(spec, "citation", what),
            check.optional_text(spec, "url", what),
        )
    return out


def _unit_table(check: Checker, doc: Map) -> dict[str, tuple[str, str]]:
    raw = check.mapping(doc["units"], doc.line_of("units"), "units")
    table: dict[str, tuple[str, str]] = {}
    for name, spec in raw.items():
        what = f"unit {name}"
        spec = check.mapping(spec, raw.line_of(name), what)
        check.keys(spec, what, required=("dimension",), optional=("aliases",))
        if spec["dimension"] not in ("mass", "substance"):
            check.fail(spec.line_of("dimension"), f"{what}: dimension must be mass or substance")
        for spelling in (name, *check.texts(spec, "aliases", what)):
            norm = normalise_unit(spelling)
            if norm in table:
                check.fail(
                    raw.line_of(name),
                    f"{what}: spelling '{spelling}' is already unit {table[norm][0]}",
                )
            table[norm] = (name, spec["dimension"])
    return table


def _vocabularies(check: Checker, doc: Map) -> dict[str, tuple[str, ...]]:
    raw = check.mapping(doc["vocabularies"], doc.line_of("vocabularies"), "vocabularies")
    check.keys(raw, "vocabularies", required=("symptoms", "factors", "medications"))
    out = {}
    for key in ("symptoms", "factors", "medications"):
        values = check.texts(raw, key, f"vocabularies {key}")
        if len(set(values)) != len(values):
            check.fail(raw.line_of(key), f"vocabularies {key}: a code is listed twice")
        out[key] = values
    return out


def _analytes(
    check: Checker, doc: Map, units: dict[str, tuple[str, str]], symptom_sets: set[str]
) -> dict[str, Analyte]:
    raw = check.mapping(doc["analytes"], doc.line_of("analytes"), "analytes")
    analytes = {
        key: build_analyte(
            check, key, check.mapping(spec, raw.line_of(key), f"analyte {key}"), units, symptom_sets
        )
        for key, spec in raw.items()
    }
    if not analytes:
        check.fail(raw.line, "analytes: at least one analyte is required")
    for key, analyte in analytes.items():
        named = (
            [analyte.decided_by]
            + ([analyte.albumin_correction.albumin_analyte] if analyte.albumin_correction else [])
            + ([b.confirm_with for b in analyte.decision.bands] if analyte.decision else [])
        )
        for other in named:
            if other is not None and other not in analytes:
                check.fail(raw.line_of(key), f"analyte {key} names unknown analyte '{other}'")
    return analytes


def _loinc_indexes(
    check: Checker, doc: Map, analytes: dict[str, Analyte]
) -> tuple[dict[str, LoincCode], dict[str, str], dict[str, RefusedLoinc]]:
    raw = check.mapping(doc["analytes"], doc.line_of("analytes"), "analytes")
    loinc: dict[str, LoincCode] = {}
    aliases: dict[str, str] = {}
    for key, analyte in analytes.items():
        for code in analyte.loinc:
            if code.code in loinc:
                check.fail(
                    raw.line_of(key),
                    f"LOINC {code.code} belongs to both {loinc[code.code].analyte} and {key}",
                )
            loinc[code.code] = code
        for name in (key, *analyte.aliases):
            if name.casefold() in aliases:
                check.fail(raw.line_of(key), f"analyte name '{name}' is used twice")
            aliases[name.casefold()] = key
    refused: dict[str, RefusedLoinc] = {}
    raw_refused: Map = check.mapping(
        doc.get("refused_loinc") or Map(), doc.line_of("refused_loinc"), "refused_loinc"
    )
    for refused_code, spec in raw_refused.items():
        what = f"refused LOINC {refused_code}"
        spec = check.mapping(spec, raw_refused.line_of(refused_code), what)
        check.keys(spec, what, required=("reason",), optional=("source",))
        if str(refused_code) in loinc:
            check.fail(
                raw_refused.line_of(refused_code),
                f"{what} is also accepted for {loinc[str(refused_code)].analyte}",
            )
        refused[str(refused_code)] = RefusedLoinc(
            str(refused_code), check.text(spec, "reason", what), sources_of(spec)
        )
    return loinc, aliases, refused


def _severity(check: Checker, doc: Map, codes: set[str]) -> Severity:
    raw = check.mapping(doc["severity"], doc.line_of("severity"), "severity")
    check.keys(
        raw,
        "severity",
        required=("by_grade", "critical_at_least", "ungraded_default"),
        optional=("ungraded", "source"),
    )

    def level(value: Any, line: int) -> str:
        if value not in SEVERITY_ORDER:
            check.fail(line, f"severity '{value}' is not one of {', '.join(SEVERITY_ORDER)}")
        return str(value)

    by_grade_raw = check.mapping(raw["by_grade"], raw.line_of("by_grade"), "severity by_grade")
    by_grade = {int(g): level(v, by_grade_raw.line_of(g)) for g, v in by_grade_raw.items()}
    ungraded_raw = check.mapping(
        raw.get("ungraded") or Map(), raw.line_of("ungraded"), "severity ungraded"
    )
    for code in ungraded_raw:
        if code not in codes:
            check.fail(ungraded_raw.line_of(code), f"severity ungraded: unknown finding '{code}'")
    return Severity(
        frozen_map(by_grade),  # type: ignore[arg-type]
        level(raw["critical_at_least"], raw.line_of("critical_at_least")),
        level(raw["ungraded_default"], raw.line_of("ungraded_default")),
        frozen_map({c: level(v, ungraded_raw.line_of(c)) for c, v in ungraded_raw.items()}),
    )


def build_ruleset(doc: Any, where: str, expected_version: str | None = None) -> Ruleset:
    """Validate ``doc`` (the file ``where``) and build its :class:`Ruleset`."""
    check = Checker(where)
    doc = check.mapping(doc, 1, "a ruleset file")
    check.keys(
        doc,
        "the ruleset",
        required=tuple(k for k in TOP_KEYS if k not in OPTIONAL_TOP),
        optional=TOP_KEYS,
    )
    version = doc["version"]
    if not isinstance(version, str) or not version.strip():
        check.fail(doc.line_of("version"), 'version must be a quoted text such as "2026.1"')
    if expected_version is not None and version != expected_version:
        check.fail(
            doc.line_of("version"),
            f"version {version} does not match the file name ({expected_version}.yaml)",
        )
    published = doc["published"]
    if not isinstance(published, dt.date) or isinstance(published, dt.datetime):
        check.fail(doc.line_of("published"), "published must be a date (YYYY-MM-DD)")
    sources = _sources(check, doc)
    body = Map(
        {k: v for k, v in doc.items() if k != "sources"}, line=doc.line, key_lines=doc.key_lines
    )
    require_sources(check, body, set(sources))
    units = _unit_table(check, doc)
    vocabularies = _vocabularies(check, doc)
    rules = build_rules(check, doc, vocabularies)
    analytes = _analytes(check, doc, units, set(rules.symptom_sets))
    loinc, aliases, refused = _loinc_indexes(check, doc, analytes)
    codes = finding_codes(analytes)
    severity = _severity(check, doc, codes)
    for code in rules.hemolysis.possibly_spurious:
        if code not in codes:
            check.fail(doc.line_of("hemolysis"), f"hemolysis: unknown finding '{code}'")
    rules.check_references(check, doc, codes, set(analytes))
    try:
        assume = AgeBound.parse(str(rules.unknown_age))
    except ValueError as exc:
        check.fail(doc.line_of("unknown_age"), f"unknown_age: {exc}")
    return Ruleset(
        version=version,
        title=check.text(doc, "title", "the ruleset"),
        published=published,
        description=str(doc.get("description") or ""),
        sources=frozen_map(sources),
        analytes=frozen_map(analytes),
        refused_loinc=frozen_map(refused),
        vocabularies=frozen_map(vocabularies),
        symptom_sets=frozen_map(rules.symptom_sets),
        code_groups=frozen_map(rules.code_groups),
        unknown_age_assume=assume,
        severity=severity,
        notes=frozen_map(rules.notes),
        red_flags=rules.red_flags,
        contributing_factors=frozen_map(rules.factors),
        follow_ups=rules.follow_ups,
        hemolysis=rules.hemolysis,
        loinc_index=frozen_map(loinc),
        alias_index=frozen_map(aliases),
    )


__all__ = ["build_ruleset"]
