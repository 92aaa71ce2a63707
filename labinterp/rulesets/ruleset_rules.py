"""The context half of a ruleset file: symptom sets, code groups, notes, red flags,
contributing factors, follow-ups and hemolysis."""

from __future__ import annotations

from dataclasses import dataclass, field

from labinterp.domain.ruleset import (
    FactorRelation,
    FollowUpRule,
    Hemolysis,
    NoteRule,
    RedFlagRule,
)
from labinterp.rulesets.analyte_schema import sources_of
from labinterp.rulesets.schema_tools import Checker, Map

NOTE_FIELDS = {
    "analyte",
    "age_years",
    "loinc",
    "loinc_name",
    "loinc_dimension",
    "unit",
    "unit_dimension",
    "measured",
    "basis",
    "basis_value",
    "b12",
    "mma",
    "range",
    "missing",
    "interval",
}
RED_FLAG_FIELDS = {"days", "site_count", "sites", "symptoms"}
FOLLOW_UP_FIELDS = {"findings", "red_flags"}
MECHANISM_FOLLOW_UPS = {"check_albumin", "check_ionized_calcium", "repeat_potassium"}
ENGINE_NOTES = {
    "age_unknown",
    "age_imprecise",
    "loinc_unit_mismatch",
    "pseudohypocalcemia",
    "b12_deficiency_unlikely",
    "lab_range_open_side",
    "lab_range_open_side_unjudged",
}


def template(check: Checker, node: Map, key: str, what: str, allowed: set[str]) -> str:
    import string

    text = check.text(node, key, what)
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        check.fail(node.line_of(key), f"{what}: {exc}")
    unknown = names - allowed
    if unknown:
        check.fail(
            node.line_of(key),
            f"{what}: unknown placeholder {{{sorted(unknown)[0]}}}; "
            f"allowed: {', '.join(sorted(allowed))}",
        )
    return text


@dataclass
class Rules:
    symptom_sets: dict[str, tuple[bool, tuple[str, ...]]] = field(default_factory=dict)
    code_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    unknown_age: str = "18 y"
    notes: dict[str, NoteRule] = field(default_factory=dict)
    red_flags: tuple[RedFlagRule, ...] = ()
    factors: dict[str, tuple[FactorRelation, ...]] = field(default_factory=dict)
    follow_ups: tuple[FollowUpRule, ...] = ()
    hemolysis: Hemolysis = field(default_factory=lambda: Hemolysis((), "repeat_potassium", (), ()))
    # (line, what, codes) to check once the analytes' finding codes are known
    _finding_refs: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)
    _analyte_refs: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)
    _relation_refs: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)

    def check_references(
        self, check: Checker, doc: Map, findings: set[str], analytes: set[str]
    ) -> None:
        for line, what, codes in self._finding_refs:
            for code in codes:
                if code not in findings:
                    check.fail(line, f"{what}: unknown finding '{code}'")
        for line, what, names in self._analyte_refs:
            for name in names:
                if name not in analytes:
                    check.fail(line, f"{what}: unknown analyte '{name}'")
        relatable = findings | set(self.notes) | set(self.code_groups) | {"twitching"}
        for line, what, codes in self._relation_refs:
            for code in codes:
                if code not in relatable:
                    check.fail(
                        line, f"{what}: '{code}' is not a finding, note, code group or twitching"
                    )
        for name, codes in self.code_groups.items():
            for code in codes:
                if code not in findings:
                    check.fail(
                        doc.line_of("code_groups"), f"code group {name}: unknown finding '{code}'"
                    )


def _symptom_sets(check: Checker, doc: Map, rules: Rules, symptoms: tuple[str, ...]) -> None:
    raw = check.mapping(
        doc.get("symptom_sets") or Map(), doc.line_of("symptom_sets"), "symptom_sets"
    )
    for name, spec in raw.items():
        what = f"symptom set {name}"
        spec = check.mapping(spec, raw.line_of(name), what)
        check.keys(spec, what, optional=("twitching", "symptoms", "source"))
        rules.symptom_sets[name] = (
            check.flag(spec, "twitching", what),
            check.members(spec, "symptoms", what, symptoms, "symptom"),
        )


def _notes(check: Checker, doc: Map, rules: Rules) -> None:
    raw = check.mapping(doc["notes"], doc.line_of("notes"), "notes")
    for code, spec in raw.items():
        what = f"note {code}"
        spec = check.mapping(spec, raw.line_of(code), what)
        check.keys(spec, what, required=("detail",), optional=("source",))
        rules.notes[code] = NoteRule(
            code, template(check, spec, "detail", what, NOTE_FIELDS), sources_of(spec)
        )
    missing = ENGINE_NOTES - set(rules.notes)
    if missing:
        check.fail(raw.line, f"notes: missing {', '.join(sorted(missing))}")


def _red_flags(check: Checker, doc: Map, rules: Rules, symptoms: tuple[str, ...]) -> None:
    raw = check.sequence(doc["red_flags"], doc.line_of("red_flags"), "red_flags")
    flags = []
    for i, spec in enumerate(raw):
        spec = check.mapping(spec, raw.line_of(i), "red flag")
        check.keys(
            spec, "red flag", required=("code", "when", "detail", "urgent"), optional=("source",)
        )
        what = f"red flag {check.text(spec, 'code', 'red flag')}"
        when = check.mapping(spec["when"], spec.line_of("when"), what)
        check.keys(
            when,
            f"{what} when",
            optional=("twitching_days_over", "twitching_sites_over", "any_symptom", "twitching"),
        )
        days = sites = None
        if "twitching_days_over" in when:
            days = check.integer(when, "twitching_days_over", what)
        if "twitching_sites_over" in when:
            sites = check.integer(when, "twitching_sites_over", what)
        flags.append(
            RedFlagRule(
                code=spec["code"],
                detail=template(check, spec, "detail", what, RED_FLAG_FIELDS),
                urgent=check.flag(spec, "urgent", what),
                sources=sources_of(spec),
                twitching_days_over=days,
                twitching_sites_over=sites,
                any_symptom=check.members(when, "any_symptom", what, symptoms, "symptom"),
                requires_twitching=check.flag(when, "twitching", what),
            )
        )
    rules.red_flags = tuple(flags)


def _factors(check: Checker, doc: Map, rules: Rules, vocab: dict[str, tuple[str, ...]]) -> None:
    raw = check.mapping(
        doc["contributing_factors"], doc.line_of("contributing_factors"), "contributing_factors"
    )
    known = set(vocab["factors"]) | set(vocab["medications"])
    for code, relations in raw.items():
        what = f"contributing factor {code}"
        if code not in known:
            check.fail(raw.line_of(code), f"{what}: not a factor or medication of the vocabularies")
        seq = check.sequence(relations, raw.line_of(code), what)
        out = []
        for i, spec in enumerate(seq):
            spec = check.mapping(spec, seq.line_of(i), what)
            check.keys(spec, what, required=("relates_to", "detail"), optional=("source",))
            relates = check.texts(spec, "relates_to", what)
            rules._relation_refs.append((spec.line_of("relates_to"), what, relates))
            out.append(FactorRelation(relates, check.text(spec, "detail", what), sources_of(spec)))
        rules.factors[code] = tuple(out)


def _follow_ups(check: Checker, doc: Map, rules: Rules) -> None:
    raw = check.sequence(doc["follow_up"], doc.line_of("follow_up"), "follow_up")
    red_flag_codes = {flag.code for flag in rules.red_flags} | {"*"}
    out = []
    for i, spec in enumerate(raw):
        spec = check.mapping(spec, raw.line_of(i), "follow-up")
        check.keys(spec, "follow-up", required=("code", "reason"), optional=("when", "source"))
        code = check.text(spec, "code", "follow-up")
        what = f"follow-up {code}"
        reason = template(check, spec, "reason", what, FOLLOW_UP_FIELDS)
        if "when" not in spec:
            if code not in MECHANISM_FOLLOW_UPS:
                check.fail(
                    spec.line,
                    f"{what}: needs 'when' (only "
                    f"{', '.join(sorted(MECHANISM_FOLLOW_UPS))} are raised by the engine)",
                )
            out.append(FollowUpRule(code, reason, sources_of(spec), by_mechanism=True))
            continue
        when = check.mapping(spec["when"], spec.line_of("when"), what)
        check.keys(
            when,
            f"{what} when",
            optional=("any_finding", "not_measured", "any_red_flag", "any_urgent_red_flag"),
        )
        findings = check.texts(when, "any_finding", what)
        measured = check.texts(when, "not_measured", what)
        rules._finding_refs.append((when.line_of("any_finding"), what, findings))
        rules._analyte_refs.append((when.line_of("not_measured"), what, measured))
        out.append(
            FollowUpRule(
                code,
                reason,
                sources_of(spec),
                any_finding=findings,
                not_measured=measured,
                any_red_flag=check.members(when, "any_red_flag", what, red_flag_codes, "red flag"),
                any_urgent_red_flag=check.flag(when, "any_urgent_red_flag", what),
            )
        )
    for code in MECHANISM_FOLLOW_UPS:
        if code not in {rule.code for rule in out}:
            check.fail(raw.line, f"follow_up: missing {code}")
    rules.follow_ups = tuple(out)


def _hemolysis(check: Checker, doc: Map, rules: Rules) -> None:
    raw = check.mapping(doc["hemolysis"], doc.line_of("hemolysis"), "hemolysis")
    check.keys(raw, "hemolysis", required=("possibly_spurious", "follow_up"), optional=("source",))
    follow = check.mapping(raw["follow_up"], raw.line_of("follow_up"), "hemolysis follow_up")
    check.keys(follow, "hemolysis follow_up", required=("code", "analytes"))
    analytes = check.texts(follow, "analytes", "hemolysis follow_up")
    rules._analyte_refs.append((follow.line_of("analytes"), "hemolysis follow_up", analytes))
    rules.hemolysis = Hemolysis(
        check.texts(raw, "possibly_spurious", "hemolysis"),
        check.text(follow, "code", "hemolysis follow_up"),
        analytes,
        sources_of(raw),
    )


def build_rules(check: Checker, doc: Map, vocab: dict[str, tuple[str, ...]]) -> Rules:
    rules = Rules()
    _symptom_sets(check, doc, rules, vocab["symptoms"])
    groups = check.mapping(
        doc.get("code_groups") or Map(), doc.line_of("code_groups"), "code_groups"
    )
    rules.code_groups = {name: check.texts(groups, name, f"code group {name}") for name in groups}
    unknown = check.mapping(doc["unknown_age"], doc.line_of("unknown_age"), "unknown_age")
    check.keys(unknown, "unknown_age", required=("assume", "note"), optional=("source",))
    rules.unknown_age = check.text(unknown, "assume", "unknown_age")
    _notes(check, doc, rules)
    if unknown["note"] not in rules.notes:
        check.fail(unknown.line_of("note"), f"unknown_age: unknown note '{unknown['note']}'")
    _red_flags(check, doc, rules, vocab["symptoms"])
    _factors(check, doc, rules, vocab)
    _follow_ups(check, doc, rules)
    _hemolysis(check, doc, rules)
    return rules
