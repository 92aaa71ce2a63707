"""Loading and validating reference_ranges/*.yaml: both rulesets load; a malformed file is a
RulesetError naming the file and the line of the offending node."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from labinterp.rulesets import RulesetError, default_directory, load_ruleset, load_rulesets
from tests.builders import R1, R2, D

REPO = Path(__file__).resolve().parents[2]

BASE = (REPO / "reference_ranges" / "2026.1.yaml").read_text(encoding="utf-8")


def broken(tmp_path: Path, old: str, new: str, name: str = "2026.1.yaml") -> tuple[Path, str]:
    assert BASE.count(old) == 1, old
    text = BASE.replace(old, new)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path, text


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def error(path: Path) -> str:
    with pytest.raises(RulesetError) as info:
        load_ruleset(path)
    return str(info.value)


# --- the shipped rulesets --------------------------------------------------------------------


def test_both_rulesets_load_from_the_repository():
    rulesets = load_rulesets(REPO / "reference_ranges")
    assert set(rulesets) >= {"2026.1", "2026.2"}
    assert rulesets["2026.1"].published.isoformat() == "2026-01-15"


def test_default_directory_is_the_repository_reference_ranges(monkeypatch):
    monkeypatch.delenv("LABINTERP_RULESETS_DIR", raising=False)
    assert default_directory().resolve() == (REPO / "reference_ranges").resolve()
    assert set(load_rulesets()) >= {"2026.1", "2026.2"}


def test_rulesets_dir_can_be_overridden_by_the_environment(tmp_path, monkeypatch):
    shutil.copy(REPO / "reference_ranges" / "2026.2.yaml", tmp_path / "2026.2.yaml")
    monkeypatch.setenv("LABINTERP_RULESETS_DIR", str(tmp_path))
    assert list(load_rulesets()) == ["2026.2"]


def test_an_empty_directory_is_an_error(tmp_path):
    with pytest.raises(RulesetError, match="no ruleset files"):
        load_rulesets(tmp_path)


def test_describe_lists_analytes_with_canonical_and_accepted_units():
    doc = R1.describe()
    assert doc["version"] == "2026.1" and doc["published"] == "2026-01-15" and doc["title"]
    mg = next(a for a in doc["analytes"] if a["key"] == "magnesium")
    assert mg["canonical_unit"] == "mmol/L"
    assert mg["accepted_units"] == ["mmol/L", "mg/dL", "mEq/L"]
    assert [a["key"] for a in doc["analytes"]] == list(R1.analytes)
    assert any(s["key"] == "kost_1990" and "JAMA 1990" in s["citation"] for s in doc["sources"])
    assert "headache" not in doc["vocabularies"]["symptoms"]
    assert {r["code"] for r in doc["refused_loinc"]} == {
        "2593-2",
        "16695-9",
        "35365-6",
        "49054-0",
        "46269-7",
    }


def test_rulesets_are_immutable():
    with pytest.raises(TypeError):
        R1.analytes["zinc"] = R1.analytes["magnesium"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        R1.version = "x"  # type: ignore[misc]


def test_2026_2_differs_only_in_vitamin_d_and_adult_magnesium():
    for key, analyte in R1.analytes.items():
        if key not in ("vitamin_d_25oh", "magnesium"):
            assert R2.analytes[key] == analyte, key
    assert R2.analytes["magnesium"].intervals[:2] == R1.analytes["magnesium"].intervals[:2]
    assert R2.analytes["magnesium"].intervals[2].low == D("0.85")
    assert R2.analytes["magnesium"].critical == R1.analytes["magnesium"].critical
    assert R2.red_flags == R1.red_flags
    assert [(f.code, f.any_finding, f.not_measured) for f in R2.follow_ups] == [
        (f.code, f.any_finding, f.not_measured) for f in R1.follow_ups
    ]
    assert R2.contributing_factors == R1.contributing_factors
    assert "endo_2011" in R2.sources and "magnet_2022" in R2.sources


def test_every_band_and_conversion_names_a_known_source():
    for ruleset in (R1, R2):
        for analyte in ruleset.analytes.values():
            for band in (*analyte.intervals, *analyte.critical):
                assert band.sources and all(s in ruleset.sources for s in band.sources)
            for conversion in analyte.units.values():
                if conversion.unit != analyte.canonical_unit:
                    assert conversion.sources


def test_numbers_are_exact_decimals():
    mg = R1.analytes["magnesium"]
    assert str(mg.intervals[2].low) == "0.70" and str(mg.units["mg/dl"].factor) == "0.4114"


# --- malformed files: file and line -----------------------------------------------------------


def test_overlapping_age_bands(tmp_path):
    path, text = broken(
        tmp_path, '{age: ["7 d", "18 y"], low: 0.65', '{age: ["5 d", "18 y"], low: 0.65'
    )
    message = error(path)
    assert message.endswith(
        f"2026.1.yaml line {line_of(text, '5 d')}: magnesium band 5 d–18 y overlaps 0–7 d"
    )


def test_gapped_age_bands(tmp_path):
    path, text = broken(
        tmp_path, '{age: ["7 d", "18 y"], low: 0.65', '{age: ["8 d", "18 y"], low: 0.65'
    )
    assert error(path).endswith(
        f"line {line_of(text, '8 d')}: magnesium band 8 d–18 y leaves a gap after 0–7 d"
    )


def test_two_open_ended_bands_overlap(tmp_path):
    path, text = broken(
        tmp_path, '{age: ["60 y", null], low: 2.20', '{age: ["50 y", null], low: 2.20'
    )
    line = line_of(text, '["50 y"')
    assert f"line {line}: calcium band ≥ 50 y overlaps 18–60 y" in error(path)


def test_bands_of_different_sexes_may_cover_the_same_ages():
    assert R1.analytes["phosphate"].intervals[0].sex == "male"


def test_low_greater_than_high(tmp_path):
    path, text = broken(tmp_path, "low: 135, high: 145", "low: 145, high: 135")
    assert error(path).endswith(
        f"line {line_of(text, 'low: 145')}: sodium band: low (145) is greater than high (135)"
    )


def test_unknown_key(tmp_path):
    path, text = broken(
        tmp_path,
        "low: 0.60, high: 1.00, source: alfred_mg",
        "low: 0.60, hgih: 1.00, source: alfred_mg",
    )
    message = error(path)
    assert f"line {line_of(text, 'hgih')}: unknown key 'hgih' in magnesium band" in message


def test_number_without_source(tmp_path):
    path, text = broken(
        tmp_path,
        "accepted_range: {low: 0.5, high: 15, source: labinterp_rules}",
        "accepted_range: {low: 0.5, high: 15}",
    )
    assert error(path).endswith(
        f"line {line_of(text, '{low: 0.5, high: 15}')}: the number 0.5 ('low') has no source"
    )


def test_unknown_source(tmp_path):
    path, text = broken(
        tmp_path,
        "low: 135, high: 145, source: textbook_sodium",
        "low: 135, high: 145, source: textbook_sodim",
    )
    assert f"line {line_of(text, 'textbook_sodim')}: unknown source 'textbook_sodim'" in error(path)


def test_unknown_unit(tmp_path):
    path, text = broken(
        tmp_path,
        "mg/dL: {factor: 0.3229, source: si_table_elephant}",
        "mg/dLL: {factor: 0.3229, source: si_table_elephant}",
    )
    assert error(path).endswith(
        f"line {line_of(text, 'mg/dLL')}: analyte phosphate: unknown "
        "unit 'mg/dLL'; add it to the units table"
    )


def test_factor_must_be_a_positive_number(tmp_path):
    path, text = broken(tmp_path, "factor: 0.3229,", "factor: many,")
    assert (
        f"line {line_of(text, 'factor: many')}: analyte phosphate unit mg/dL: 'factor' must "
        "be a number" in error(path)
    )


def test_invalid_yaml_names_the_line(tmp_path):
    path, _ = broken(
        tmp_path,
        '"2823-3": {name: "Potassium [Moles/volume] in Serum or Plasma"',
        '"2823-3": {name: "Potassium [Moles/volume] in Serum or Plasma"]',
    )
    assert "2026.1.yaml line" in error(path) and "invalid YAML" in error(path)


def test_duplicate_key(tmp_path):
    path, text = broken(tmp_path, "    display: Sodium\n", "    display: Sodium\n    display: Na\n")
    assert error(path).endswith(f"line {line_of(text, 'display: Na')}: duplicate key 'display'")


def test_version_must_match_the_file_name(tmp_path):
    path = tmp_path / "2026.9.yaml"
    path.write_text(BASE, encoding="utf-8")
    line = line_of(BASE, 'version: "2026.1"')
    assert error(path).endswith(
        f"2026.9.yaml line {line}: version 2026.1 does not match the file name (2026.9.yaml)"
    )


def test_missing_top_level_section(tmp_path):
    path, _ = broken(tmp_path, "hemolysis:\n  possibly_spurious", "hemolysys:\n  possibly_spurious")
    assert "unknown key 'hemolysys'" in error(path)


def test_follow_up_naming_an_unknown_finding(tmp_path):
    path, text = broken(
        tmp_path, "when: {any_finding: [b12_borderline],", "when: {any_finding: [b12_borderlin],"
    )
    assert error(path).endswith(
        f"line {line_of(text, 'b12_borderlin]')}: follow-up check_mma: "
        "unknown finding 'b12_borderlin'"
    )


def test_follow_up_naming_an_unknown_analyte(tmp_path):
    path, text = broken(tmp_path, "not_measured: [creatinine]}", "not_measured: [kreatinine]}")
    assert (
        f"line {line_of(text, 'kreatinine')}: follow-up check_renal_function: unknown "
        "analyte 'kreatinine'" in error(path)
    )


def test_contributing_factor_not_in_the_vocabularies(tmp_path):
    path, text = broken(
        tmp_path, "  colchicine:\n    - {relates_to", "  colchicin:\n    - {relates_to"
    )
    assert f"line {line_of(text, 'colchicin:')}: contributing factor colchicin" in error(path)


def test_contributing_factor_relating_to_nothing_known(tmp_path):
    path, text = broken(
        tmp_path,
        "relates_to: [hypocalcemia, pseudohypocalcemia]",
        "relates_to: [hypocalcemia, pseudo]",
    )
    assert (
        f"line {line_of(text, 'pseudo]')}: contributing factor gadolinium_contrast: 'pseudo' "
        "is not a finding" in error(path)
    )


def test_red_flag_with_an_unknown_symptom(tmp_path):
    path, text = broken(
        tmp_path, "when: {any_symptom: [stiffness]}", "when: {any_symptom: [stifness]}"
    )
    assert (
        f"line {line_of(text, 'stifness')}: red flag stiffness: unknown symptom 'stifness'"
        in error(path)
    )


def test_refused_loinc_that_is_also_accepted(tmp_path):
    path, text = broken(tmp_path, '"2593-2": {reason', '"2601-3": {reason')
    assert (
        f"line {line_of(text, '2601-3')}: refused LOINC 2601-3 is also accepted for "
        "magnesium" in error(path)
    )


def test_note_with_an_unknown_placeholder(tmp_path):
    path, text = broken(tmp_path, "{analyte}: LOINC {loinc}", "{analyt}: LOINC {loinc}")
    assert (
        f"line {line_of(text, '{analyt}')}: note loinc_unit_mismatch: unknown placeholder "
        "{analyt}" in error(path)
    )


def test_grading_of_a_code_that_is_not_a_finding(tmp_path):
    path, text = broken(
        tmp_path,
        "      hypernatremia:\n        source: ctcae_v5",
        "      hypernatraemia:\n        source: ctcae_v5",
    )
    assert (
        f"line {line_of(text, 'hypernatraemia')}: analyte sodium grading hypernatraemia"
        in error(path)
    )


def test_age_bound_must_be_days_months_or_years(tmp_path):
    path, text = broken(
        tmp_path, '{age: ["7 d", "18 y"], low: 0.65', '{age: ["7 d", "18 years"], low: 0.65'
    )
    assert f"line {line_of(text, '18 years')}: magnesium band: age '18 years'" in error(path)


def test_empty_file(tmp_path):
    path = tmp_path / "2026.1.yaml"
    path.write_text("", encoding="utf-8")
    assert error(path).endswith("2026.1.yaml line 1: the file is empty")


def test_not_a_mapping(tmp_path):
    path = tmp_path / "2026.1.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    assert error(path).endswith("line 1: a ruleset file must be a mapping")


def test_published_must_be_a_date(tmp_path):
    path, text = broken(tmp_path, "published: 2026-01-15", "published: soon")
    assert error(path).endswith(
        f"line {line_of(text, 'published')}: published must be a date (YYYY-MM-DD)"
    )


def test_a_broken_file_fails_the_whole_directory(tmp_path):
    shutil.copy(REPO / "reference_ranges" / "2026.2.yaml", tmp_path / "2026.2.yaml")
    broken(tmp_path, "low: 135, high: 145", "low: 145, high: 135")
    with pytest.raises(RulesetError, match=r"2026\.1\.yaml line"):
        load_rulesets(tmp_path)
