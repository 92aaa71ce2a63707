"""Acceptance tests of the clinical engine, written from shared/CLINICAL.md, not from the code.

Every expected number was computed by hand from CLINICAL.md with decimal arithmetic (the
working is in the comments). A failure here is either a deviation of the engine from
CLINICAL.md or a mistake in this file; decide against the spec, never against the engine.
"""

# Test tables keep one case per line with an id stating the rule; that beats the line limit.
# ruff: noqa: E501

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from labinterp.domain import (
    Context,
    PanelRejected,
    RawPanel,
    RawRange,
    RawResult,
    Twitching,
    accept_panel,
    interpret,
)
from labinterp.rulesets import load_rulesets

# A fixed clock: collection at noon UTC so that dates never straddle midnight.
COLLECTED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NOW = COLLECTED + timedelta(minutes=30)

CANONICAL_UNIT = {
    "magnesium": "mmol/L",
    "potassium": "mmol/L",
    "sodium": "mmol/L",
    "calcium": "mmol/L",
    "calcium_ionized": "mmol/L",
    "albumin": "g/L",
    "phosphate": "mmol/L",
    "vitamin_d_25oh": "nmol/L",
    "vitamin_b12": "pmol/L",
    "methylmalonic_acid": "umol/L",
    "homocysteine": "umol/L",
    "folate": "nmol/L",
    "pth": "pmol/L",
    "creatinine": "umol/L",
}

_UNSET = object()


# --------------------------------------------------------------------------- helpers


@functools.cache
def get_ruleset(version: str = "2026.1"):
    return load_rulesets()[version]


def _dec(value):
    return None if value is None else D(str(value))


def res(analyte, value, unit, low=None, high=None, *, loinc=None) -> RawResult:
    """One result; ``low``/``high`` are the laboratory's own range in the result's unit."""
    lab = None
    if low is not None or high is not None:
        lab = RawRange(low=_dec(low), high=_dec(high))
    return RawResult(
        analyte=analyte, loinc=loinc, value=_dec(value), unit=unit, reference_range=lab
    )


def by_loinc(loinc, value, unit, low=None, high=None) -> RawResult:
    return res(None, value, unit, low, high, loinc=loinc)


def _as_result(item) -> RawResult:
    if isinstance(item, RawResult):
        return item
    analyte, value, unit, *lab = item
    low, high = lab[0] if lab else (None, None)
    return res(analyte, value, unit, low, high)


def twitch(*sites, days=7, frequency="daily") -> Twitching:
    return Twitching(sites=tuple(sites) or ("calf",), duration_days=days, frequency=frequency)


def panel(
    results,
    *,
    age=_UNSET,
    birth_date=None,
    sex="female",
    collected_at=COLLECTED,
    hemolyzed=False,
    twitching=None,
    symptoms=(),
    factors=(),
    medications=(),
    notes=None,
) -> RawPanel:
    if age is _UNSET:
        age = None if birth_date is not None else 40
    return RawPanel(
        collected_at=collected_at,
        results=tuple(_as_result(r) for r in results),
        sex=sex,
        birth_date=birth_date,
        age_years=age,
        hemolyzed=hemolyzed,
        specimen_type="serum",
        context=Context(
            twitching=twitching,
            symptoms=tuple(symptoms),
            factors=tuple(factors),
            medications=tuple(medications),
            notes=notes,
        ),
    )


def interpretation(results, *, ruleset="2026.1", now=NOW, **kw):
    rs = get_ruleset(ruleset)
    return interpret(accept_panel(panel(results, **kw), rs, now), rs)


def run(results, *, ruleset="2026.1", now=NOW, **kw) -> dict:
    """Accept and interpret a panel built from compact arguments; the interpretation as a dict."""
    return interpretation(results, ruleset=ruleset, now=now, **kw).to_dict()


def rejected(results, *, now=NOW, **kw) -> dict[str, list[str]]:
    """The errors of a panel that must be refused (422 semantics)."""
    with pytest.raises(PanelRejected) as caught:
        accept_panel(panel(results, **kw), get_ruleset(), now)
    errors = caught.value.errors
    assert errors, "PanelRejected without errors"
    for path, messages in errors.items():
        assert messages and all(isinstance(m, str) and m for m in messages), path
    return errors


def codes(d) -> list[str]:
    return sorted(f["code"] for f in d["findings"])


def finding(d, code) -> dict:
    matches = [f for f in d["findings"] if f["code"] == code]
    assert len(matches) == 1, f"expected one {code!r} finding, got {codes(d)}"
    return matches[0]


def findings_of(d, analyte) -> list[dict]:
    return [f for f in d["findings"] if f["analyte"] == analyte]


def result_of(d, analyte) -> dict:
    matches = [r for r in d["results"] if r["analyte"] == analyte]
    assert len(matches) == 1, f"expected one {analyte} result, got {d['results']}"
    return matches[0]


def flag_of(d, analyte) -> str:
    return result_of(d, analyte)["interpretation"]


def red_flags(d) -> dict[str, bool]:
    out = {}
    for rf in d["red_flags"]:
        assert rf["code"] not in out, f"red flag {rf['code']} listed twice"
        out[rf["code"]] = rf["urgent"]
    return out


def follow_ups(d) -> list[str]:
    return [f["code"] for f in d["follow_up"]]


def note_codes(d) -> list[str]:
    return [n["code"] for n in d["notes"]]


def factors(d) -> dict[str, set[str]]:
    out = {}
    for cf in d["contributing_factors"]:
        assert cf["code"] not in out, f"contributing factor {cf['code']} listed twice"
        out[cf["code"]] = set(cf["relates_to"])
    return out


def measured_value(f):
    m = f["measured"]
    return m["value"] if isinstance(m, dict) else m


def text(number) -> str:
    return format(D(str(number)), "f")


def days_before(d: date, n: int) -> date:
    return d - timedelta(days=n)


# --------------------------------------------------------------------------- conversions


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "canonical"),
    [
        pytest.param(
            "magnesium", "1.7", "mg/dL", "0.70", id="Mg 1.7 mg/dL x0.4114 = 0.69938 -> 0.70"
        ),
        pytest.param(
            "magnesium", "1.1", "mg/dL", "0.45", id="Mg 1.1 mg/dL x0.4114 = 0.45254 -> 0.45"
        ),
        pytest.param("magnesium", "1.6", "mEq/L", "0.80", id="Mg 1.6 mEq/L x0.5 -> 0.80"),
        pytest.param(
            "magnesium", "1.39", "mEq/L", "0.70", id="Mg 1.39 mEq/L x0.5 = 0.695 -> 0.70 half up"
        ),
        pytest.param(
            "magnesium", "0.695", "mmol/L", "0.70", id="Mg canonical 0.695 rounded to 0.70"
        ),
        pytest.param(
            "potassium",
            "3.45",
            "mEq/L",
            "3.5",
            id="K 3.45 mEq/L -> 3.5 half up (not half even 3.4)",
        ),
        pytest.param("potassium", "5.15", "mmol/L", "5.2", id="K canonical 5.15 rounded to 5.2"),
        pytest.param("sodium", "134.5", "mmol/L", "135", id="Na 134.5 -> 135 half up (not 134)"),
        pytest.param("sodium", "140", "mEq/L", "140", id="Na mEq/L x1"),
        pytest.param(
            "calcium", "8.1", "mg/dL", "2.02", id="Ca 8.1 mg/dL x0.2495 = 2.02095 -> 2.02"
        ),
        pytest.param(
            "calcium", "10.0", "mg/dL", "2.50", id="Ca 10.0 mg/dL x0.2495 = 2.495 -> 2.50"
        ),
        pytest.param("calcium", "4.29", "mEq/L", "2.15", id="Ca 4.29 mEq/L x0.5 = 2.145 -> 2.15"),
        pytest.param(
            "calcium_ionized", "4.6", "mg/dL", "1.15", id="iCa 4.6 mg/dL x0.2495 = 1.1477 -> 1.15"
        ),
        pytest.param("albumin", "3.2", "g/dL", "32", id="albumin 3.2 g/dL x10 -> 32 g/L"),
        pytest.param("albumin", "3.45", "g/dL", "35", id="albumin 3.45 g/dL = 34.5 -> 35 half up"),
        pytest.param(
            "phosphate", "2.5", "mg/dL", "0.81", id="phosphate 2.5 mg/dL x0.3229 = 0.80725 -> 0.81"
        ),
        pytest.param(
            "vitamin_d_25oh", "20", "ng/mL", "50", id="vitD 20 ng/mL x2.496 = 49.92 -> 50"
        ),
        pytest.param(
            "vitamin_d_25oh", "14", "ng/mL", "35", id="vitD 14 ng/mL x2.496 = 34.944 -> 35"
        ),
        pytest.param(
            "vitamin_b12", "180", "pg/mL", "133", id="B12 180 pg/mL x0.7378 = 132.804 -> 133"
        ),
        pytest.param(
            "vitamin_b12", "351", "ng/L", "259", id="B12 351 ng/L x0.7378 = 258.9678 -> 259"
        ),
        pytest.param(
            "methylmalonic_acid",
            "405",
            "nmol/L",
            "0.41",
            id="MMA 405 nmol/L x0.001 = 0.405 -> 0.41",
        ),
        pytest.param("methylmalonic_acid", "0.3", "nmol/mL", "0.30", id="MMA nmol/mL x1"),
        pytest.param("homocysteine", "15.05", "umol/L", "15.1", id="homocysteine 15.05 -> 15.1"),
        pytest.param("folate", "4", "ng/mL", "9.1", id="folate 4 ng/mL x2.266 = 9.064 -> 9.1"),
        pytest.param("folate", "4", "ug/L", "9.1", id="folate ug/L like ng/mL"),
        pytest.param("pth", "15", "pg/mL", "1.6", id="PTH 15 pg/mL x0.106 = 1.59 -> 1.6"),
        pytest.param("pth", "15", "ng/L", "1.6", id="PTH ng/L like pg/mL"),
        pytest.param("creatinine", "1.0", "mg/dL", "88", id="creatinine 1.0 mg/dL x88.4 -> 88"),
    ],
)
def test_value_is_converted_to_canonical_unit_and_rounded_half_up(analyte, value, unit, canonical):
    d = run([(analyte, value, unit)])
    r = result_of(d, analyte)
    assert r["value"] == D(canonical)
    assert r["unit"] == CANONICAL_UNIT[analyte]


def test_magnesium_1_7_mg_dl_is_0_70_mmol_l_and_normal_not_0_699_low():
    d = run([("magnesium", "1.7", "mg/dL")])
    assert result_of(d, "magnesium")["interpretation"] == "N"
    assert d["findings"] == []
    assert d["status"] == "normal"


def test_vitamin_d_20_ng_ml_is_50_nmol_l_and_adequate_under_2026_1():
    d = run([("vitamin_d_25oh", "20", "ng/mL")])
    assert result_of(d, "vitamin_d_25oh")["value"] == 50
    assert d["findings"] == []


@pytest.mark.parametrize(
    ("analyte", "value", "unit"),
    [
        pytest.param(
            "potassium", "3.45", "mEq/L", id="K 3.45 -> 3.5 normal, half even would say 3.4 L"
        ),
        pytest.param(
            "sodium", "134.5", "mmol/L", id="Na 134.5 -> 135 normal, half even would say 134 L"
        ),
        pytest.param(
            "calcium", "4.29", "mEq/L", id="Ca 4.29 mEq/L -> 2.15 normal, half even 2.14 L"
        ),
        pytest.param("albumin", "3.45", "g/dL", id="albumin 34.5 -> 35 normal, half even 34 L"),
        pytest.param("pth", "15", "pg/mL", id="PTH 1.59 -> 1.6 normal"),
        pytest.param("folate", "4", "ng/mL", id="folate 9.064 -> 9.1 normal"),
    ],
)
def test_rounded_canonical_value_at_the_lower_limit_is_normal(analyte, value, unit):
    d = run([(analyte, value, unit)])
    assert flag_of(d, analyte) == "N"
    assert d["findings"] == []


def test_mma_405_nmol_l_rounds_half_up_to_0_41_and_is_elevated_above_0_40():
    d = run([("methylmalonic_acid", "405", "nmol/L")])
    assert flag_of(d, "methylmalonic_acid") == "H"
    assert codes(d) == ["elevated_mma"]


def test_potassium_5_15_mmol_l_rounds_to_5_2_and_is_high():
    d = run([("potassium", "5.15", "mmol/L")])
    f = finding(d, "hyperkalemia")
    assert f["value"] == D("5.2")
    assert f["reported"]["value"] == D("5.15")


def test_reported_value_and_unit_are_kept_verbatim_beside_the_canonical_value():
    d = run([("magnesium", "1.1", "mg/dL")])
    f = finding(d, "hypomagnesemia")
    assert f["value"] == D("0.45") and f["unit"] == "mmol/L"
    assert f["reported"]["value"] == D("1.1") and f["reported"]["unit"] == "mg/dL"


def test_unit_spelling_case_is_kept_verbatim_in_reported():
    d = run([("potassium", "5.6", "MMOL/L")])
    f = finding(d, "hyperkalemia")
    assert f["unit"] == "mmol/L"
    assert f["reported"]["unit"] == "MMOL/L"


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "canonical"),
    [
        pytest.param("potassium", "4.0", "MMOL/L", "4.0", id="MMOL/L"),
        pytest.param("potassium", "4.0", "meq/l", "4.0", id="K meq/l"),
        pytest.param("magnesium", "1.6", "meq/l", "0.80", id="Mg meq/l x0.5"),
        pytest.param("magnesium", "1.6", "MEQ/L", "0.80", id="Mg MEQ/L"),
        pytest.param("magnesium", "1.7", "MG/DL", "0.70", id="Mg MG/DL"),
        pytest.param("calcium", "8.1", "mg/dl", "2.02", id="Ca mg/dl"),
        pytest.param("vitamin_d_25oh", "20", "NG/ML", "50", id="vitD NG/ML"),
        pytest.param("vitamin_b12", "300", "PMOL/L", "300", id="B12 PMOL/L"),
        pytest.param("methylmalonic_acid", "0.30", "umol/L", "0.30", id="MMA umol/L"),
        pytest.param(
            "methylmalonic_acid", "0.30", "\u00b5mol/L", "0.30", id="MMA micro-sign mol/L"
        ),
        pytest.param("methylmalonic_acid", "0.30", "UMOL/L", "0.30", id="MMA UMOL/L"),
        pytest.param(
            "homocysteine", "10", "\u00b5mol/L", "10.0", id="homocysteine micro-sign mol/L"
        ),
        pytest.param("folate", "4", "\u00b5g/L", "9.1", id="folate micro-sign g/L"),
        pytest.param("creatinine", "80", "\u00b5mol/L", "80", id="creatinine micro-sign mol/L"),
    ],
)
def test_unit_spellings_are_matched_case_insensitively_with_micro_or_u(
    analyte, value, unit, canonical
):
    d = run([(analyte, value, unit)])
    assert result_of(d, analyte)["value"] == D(canonical)


# --------------------------------------------------------------------------- acceptance (422)


def test_unknown_analyte_is_rejected_at_results_i_analyte():
    errors = rejected([("magnesium", "0.8", "mmol/L"), ("unobtainium", "1", "mmol/L")])
    assert "results.1.analyte" in errors


def test_unknown_loinc_is_rejected_at_results_i_loinc():
    errors = rejected([by_loinc("99999-9", "1", "mmol/L")])
    assert "results.0.loinc" in errors


@pytest.mark.parametrize(
    ("loinc", "unit"),
    [
        pytest.param("2593-2", "mmol/L", id="2593-2 erythrocyte magnesium"),
        pytest.param("16695-9", "pmol/L", id="16695-9 whole-blood B12"),
        pytest.param("35365-6", "nmol/L", id="35365-6 vitamin D and metabolites"),
        pytest.param("49054-0", "nmol/L", id="49054-0 25-OH vitamin D2 alone"),
        pytest.param("46269-7", "nmol/L", id="46269-7 25-OH vitamin D2 alone"),
    ],
)
def test_refused_loinc_codes_are_rejected_with_a_reason(loinc, unit):
    errors = rejected([by_loinc(loinc, "1", unit)])
    assert "results.0.loinc" in errors


def test_result_naming_analyte_and_a_loinc_of_another_analyte_is_rejected():
    errors = rejected([res("magnesium", "0.8", "mmol/L", loinc="2823-3")])
    assert any(path.startswith("results.0") for path in errors), errors


def test_result_naming_analyte_and_its_own_loinc_is_accepted():
    d = run([res("potassium", "4.0", "mmol/L", loinc="2823-3")])
    assert flag_of(d, "potassium") == "N"


def test_result_naming_neither_analyte_nor_loinc_is_rejected():
    errors = rejected([res(None, "0.8", "mmol/L")])
    assert any(path.startswith("results.0") for path in errors), errors


def test_panel_without_results_is_rejected_at_results():
    errors = rejected([])
    assert any(path.startswith("results") for path in errors), errors


def test_unit_not_valid_for_analyte_is_rejected_naming_the_allowed_units():
    errors = rejected([("magnesium", "0.8", "mmol/L"), ("potassium", "3.2", "mg/dL")])
    assert "results.1.unit" in errors
    message = " ".join(errors["results.1.unit"]).lower()
    assert "mmol/l" in message and "meq/l" in message


def test_vitamin_d_in_pg_ml_is_rejected_naming_nmol_l_and_ng_ml():
    errors = rejected([("vitamin_d_25oh", "30", "pg/mL")])
    message = " ".join(errors["results.0.unit"]).lower()
    assert "nmol/l" in message and "ng/ml" in message


def test_missing_value_is_rejected_at_results_i_value():
    errors = rejected([("magnesium", None, "mmol/L")])
    assert "results.0.value" in errors


def test_missing_unit_is_rejected_at_results_i_unit():
    errors = rejected([("magnesium", "0.8", None)])
    assert "results.0.unit" in errors


@pytest.mark.parametrize(
    ("analyte", "value", "unit"),
    [
        pytest.param("magnesium", "0", "mmol/L", id="Mg zero"),
        pytest.param("potassium", "-1", "mmol/L", id="K negative"),
        pytest.param("vitamin_d_25oh", "-20", "ng/mL", id="vitD negative"),
        pytest.param("magnesium", "0.04", "mmol/L", id="Mg below 0.05"),
        pytest.param("magnesium", "10.5", "mmol/L", id="Mg above 10"),
        pytest.param("magnesium", "25", "mg/dL", id="Mg 25 mg/dL = 10.285 mmol/L above 10"),
        pytest.param("potassium", "0.4", "mmol/L", id="K below 0.5"),
        pytest.param("potassium", "15.1", "mmol/L", id="K above 15"),
        pytest.param("sodium", "79", "mmol/L", id="Na below 80"),
        pytest.param("sodium", "221", "mmol/L", id="Na above 220"),
        pytest.param("calcium", "7.1", "mmol/L", id="Ca above 7"),
        pytest.param("calcium_ionized", "4.1", "mmol/L", id="iCa above 4"),
        pytest.param("albumin", "9.1", "g/dL", id="albumin 91 g/L above 90"),
        pytest.param("albumin", "0.5", "g/L", id="albumin below 1"),
        pytest.param("vitamin_d_25oh", "1501", "nmol/L", id="vitD above 1500"),
        pytest.param("vitamin_b12", "20001", "pmol/L", id="B12 above 20000"),
        pytest.param("creatinine", "4", "umol/L", id="creatinine below 5"),
    ],
)
def test_zero_negative_or_physiologically_impossible_value_is_rejected(analyte, value, unit):
    errors = rejected([(analyte, value, unit)])
    assert "results.0.value" in errors


@pytest.mark.parametrize(
    ("analyte", "value"),
    [
        pytest.param("magnesium", "0.05", id="Mg 0.05"),
        pytest.param("magnesium", "10", id="Mg 10"),
        pytest.param("potassium", "0.5", id="K 0.5"),
        pytest.param("potassium", "15", id="K 15"),
        pytest.param("sodium", "80", id="Na 80"),
        pytest.param("sodium", "220", id="Na 220"),
    ],
)
def test_values_at_the_accepted_range_limits_are_accepted_and_critical(analyte, value):
    d = run([(analyte, value, "mmol/L")])
    assert flag_of(d, analyte) in ("LL", "HH")
    assert d["priority"] == "critical"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            ("magnesium", "0.8", "mmol/L"),
            ("magnesium", "2.0", "mg/dL"),
            id="same analyte key twice",
        ),
        pytest.param(
            ("magnesium", "0.8", "mmol/L"),
            by_loinc("19123-9", "2.0", "mg/dL"),
            id="analyte key and LOINC of the same analyte",
        ),
        pytest.param(
            by_loinc("19123-9", "2.0", "mg/dL"),
            by_loinc("2601-3", "0.8", "mmol/L"),
            id="two LOINCs of the same analyte",
        ),
    ],
)
def test_two_results_of_the_same_analyte_are_rejected(first, second):
    errors = rejected([first, second])
    assert any(path.startswith("results.1") for path in errors), errors


def test_potassium_by_2823_3_and_6298_4_in_one_panel_is_a_duplicate():
    errors = rejected([by_loinc("2823-3", "4.0", "mmol/L"), by_loinc("6298-4", "4.1", "mmol/L")])
    assert any(path.startswith("results.1") for path in errors), errors


def test_total_and_ionized_calcium_are_different_analytes_not_duplicates():
    d = run([("calcium", "2.30", "mmol/L"), ("calcium_ionized", "1.20", "mmol/L")])
    assert d["status"] == "normal"


def test_collection_more_than_5_minutes_in_the_future_is_rejected_at_collected_at():
    errors = rejected([("magnesium", "0.8", "mmol/L")], collected_at=NOW + timedelta(minutes=6))
    assert "collected_at" in errors


def test_collection_5_minutes_and_1_second_in_the_future_is_rejected():
    errors = rejected(
        [("magnesium", "0.8", "mmol/L")], collected_at=NOW + timedelta(minutes=5, seconds=1)
    )
    assert "collected_at" in errors


@pytest.mark.parametrize(
    "ahead",
    [
        pytest.param(timedelta(minutes=4), id="4 minutes ahead"),
        pytest.param(timedelta(minutes=5), id="exactly 5 minutes ahead is not more than 5"),
    ],
)
def test_collection_up_to_5_minutes_in_the_future_is_accepted(ahead):
    d = run([("magnesium", "0.8", "mmol/L")], collected_at=NOW + ahead)
    assert d["status"] == "normal"


def test_collection_before_the_birth_date_is_rejected():
    errors = rejected([("magnesium", "0.8", "mmol/L")], birth_date=date(2026, 11, 21))
    assert "collected_at" in errors or "patient.birth_date" in errors, errors


def test_collection_on_the_day_of_birth_is_accepted():
    d = run([("potassium", "4.0", "mmol/L")], birth_date=date(2026, 11, 20))
    assert flag_of(d, "potassium") == "N"


def test_unknown_symptom_is_rejected_at_its_index_naming_the_allowed_codes():
    errors = rejected([("magnesium", "0.8", "mmol/L")], symptoms=("numbness", "sneezing"))
    assert "context.symptoms.1" in errors
    assert "context.symptoms.0" not in errors
    assert "muscle_weakness" in " ".join(errors["context.symptoms.1"])


def test_unknown_factor_is_rejected_at_context_factors_i():
    errors = rejected([("magnesium", "0.8", "mmol/L")], factors=("coffee",))
    assert "context.factors.0" in errors
    assert "caffeine" in " ".join(errors["context.factors.0"])


def test_medication_code_given_as_a_factor_is_rejected():
    errors = rejected([("magnesium", "0.8", "mmol/L")], factors=("stress", "loop_diuretic"))
    assert "context.factors.1" in errors


def test_unknown_medication_is_rejected_at_context_medications_i():
    errors = rejected([("magnesium", "0.8", "mmol/L")], medications=("aspirin",))
    assert "context.medications.0" in errors
    assert "loop_diuretic" in " ".join(errors["context.medications.0"])


def test_lab_range_with_low_above_high_is_rejected():
    errors = rejected([("potassium", "4.0", "mmol/L", ("5.1", "3.5"))])
    assert any(path.startswith("results.0") for path in errors), errors


def test_several_errors_are_reported_at_once_each_at_its_path():
    errors = rejected(
        [
            ("potassium", "3.2", "mg/dL"),
            ("magnesium", "0.8", "mmol/L"),
            ("unobtainium", "1", "mmol/L"),
            ("sodium", "0", "mmol/L"),
        ],
        factors=("coffee",),
    )
    for path in ("results.0.unit", "results.2.analyte", "results.3.value", "context.factors.0"):
        assert path in errors, errors
    assert not any(path.startswith("results.1") for path in errors)


# --------------------------------------------------------------------------- LOINC dimension


def test_loinc_19123_9_mass_code_sent_in_mmol_l_is_converted_by_its_unit_with_a_note():
    d = run([by_loinc("19123-9", "0.80", "mmol/L")])
    r = result_of(d, "magnesium")
    assert r["value"] == D("0.80") and r["interpretation"] == "N"
    notes = [n for n in d["notes"] if n["code"] == "loinc_unit_mismatch"]
    assert len(notes) == 1
    assert "magnesium" in notes[0]["detail"].lower()


def test_loinc_19123_9_sent_in_mg_dl_has_no_mismatch_note():
    d = run([by_loinc("19123-9", "1.7", "mg/dL")])
    assert result_of(d, "magnesium")["value"] == D("0.70")
    assert "loinc_unit_mismatch" not in note_codes(d)


# --------------------------------------------------------------------------- band edges


def _edge(label, analyte, value, flag, code=None, grade=None, critical=False):
    name = f"{label} {value} is {flag}"
    if code:
        name += f" {code} grade {grade}"
    if critical:
        name += " critical"
    return pytest.param(analyte, value, flag, code, grade, critical, id=name)


EDGES = [
    # magnesium, adult 0.70-1.10, critical < 0.41 / > 2.02
    _edge("Mg", "magnesium", "0.70", "N"),
    _edge("Mg", "magnesium", "1.10", "N"),
    _edge("Mg", "magnesium", "0.69", "L", "hypomagnesemia", 1),
    _edge("Mg", "magnesium", "0.50", "L", "hypomagnesemia", 1),
    _edge("Mg", "magnesium", "0.49", "L", "hypomagnesemia", 2),
    _edge("Mg", "magnesium", "0.41", "L", "hypomagnesemia", 2),
    _edge("Mg", "magnesium", "0.40", "LL", "hypomagnesemia", 2, True),
    _edge("Mg", "magnesium", "0.39", "LL", "hypomagnesemia", 3, True),
    _edge("Mg", "magnesium", "0.30", "LL", "hypomagnesemia", 3, True),
    _edge("Mg", "magnesium", "0.29", "LL", "hypomagnesemia", 4, True),
    _edge("Mg", "magnesium", "1.11", "H", "hypermagnesemia", 1),
    _edge("Mg", "magnesium", "1.23", "H", "hypermagnesemia", 1),
    _edge("Mg", "magnesium", "1.24", "H", "hypermagnesemia", 3),
    _edge("Mg", "magnesium", "2.02", "H", "hypermagnesemia", 3),
    _edge("Mg", "magnesium", "2.03", "HH", "hypermagnesemia", 3, True),
    _edge("Mg", "magnesium", "3.30", "HH", "hypermagnesemia", 3, True),
    _edge("Mg", "magnesium", "3.31", "HH", "hypermagnesemia", 4, True),
    # potassium, >= 6 mo 3.5-5.1, critical < 2.8 / > 6.2
    _edge("K", "potassium", "3.5", "N"),
    _edge("K", "potassium", "5.1", "N"),
    _edge("K", "potassium", "3.4", "L", "hypokalemia", 1),
    _edge("K", "potassium", "3.0", "L", "hypokalemia", 1),
    _edge("K", "potassium", "2.9", "L", "hypokalemia", 3),
    _edge("K", "potassium", "2.8", "L", "hypokalemia", 3),
    _edge("K", "potassium", "2.7", "LL", "hypokalemia", 3, True),
    _edge("K", "potassium", "2.6", "LL", "hypokalemia", 3, True),
    _edge("K", "potassium", "2.5", "LL", "hypokalemia", 3, True),
    _edge("K", "potassium", "2.4", "LL", "hypokalemia", 4, True),
    _edge("K", "potassium", "5.2", "H", "hyperkalemia", 1),
    _edge("K", "potassium", "5.5", "H", "hyperkalemia", 1),
    _edge("K", "potassium", "5.6", "H", "hyperkalemia", 2),
    _edge("K", "potassium", "6.0", "H", "hyperkalemia", 2),
    _edge("K", "potassium", "6.1", "H", "hyperkalemia", 3),
    _edge("K", "potassium", "6.2", "H", "hyperkalemia", 3),
    _edge("K", "potassium", "6.3", "HH", "hyperkalemia", 3, True),
    _edge("K", "potassium", "6.8", "HH", "hyperkalemia", 3, True),
    _edge("K", "potassium", "7.0", "HH", "hyperkalemia", 3, True),
    _edge("K", "potassium", "7.1", "HH", "hyperkalemia", 4, True),
    # sodium 135-145, critical < 120 / > 158
    _edge("Na", "sodium", "135", "N"),
    _edge("Na", "sodium", "145", "N"),
    _edge("Na", "sodium", "134", "L", "hyponatremia", 1),
    _edge("Na", "sodium", "130", "L", "hyponatremia", 1),
    _edge("Na", "sodium", "129", "L", "hyponatremia", 2),
    _edge("Na", "sodium", "125", "L", "hyponatremia", 2),
    _edge("Na", "sodium", "124", "L", "hyponatremia", 3),
    _edge("Na", "sodium", "120", "L", "hyponatremia", 3),
    _edge("Na", "sodium", "119", "LL", "hyponatremia", 4, True),
    _edge("Na", "sodium", "146", "H", "hypernatremia", 1),
    _edge("Na", "sodium", "150", "H", "hypernatremia", 1),
    _edge("Na", "sodium", "151", "H", "hypernatremia", 2),
    _edge("Na", "sodium", "155", "H", "hypernatremia", 2),
    _edge("Na", "sodium", "156", "H", "hypernatremia", 3),
    _edge("Na", "sodium", "158", "H", "hypernatremia", 3),
    _edge("Na", "sodium", "159", "HH", "hypernatremia", 3, True),
    _edge("Na", "sodium", "160", "HH", "hypernatremia", 3, True),
    _edge("Na", "sodium", "161", "HH", "hypernatremia", 4, True),
    # total calcium without albumin (nothing to correct), 18-60 y 2.15-2.50, critical < 1.65 / > 3.22
    _edge("Ca", "calcium", "2.15", "N"),
    _edge("Ca", "calcium", "2.50", "N"),
    _edge("Ca", "calcium", "2.14", "L", "hypocalcemia", 1),
    _edge("Ca", "calcium", "2.00", "L", "hypocalcemia", 1),
    _edge("Ca", "calcium", "1.99", "L", "hypocalcemia", 2),
    _edge("Ca", "calcium", "1.75", "L", "hypocalcemia", 2),
    _edge("Ca", "calcium", "1.74", "L", "hypocalcemia", 3),
    _edge("Ca", "calcium", "1.65", "L", "hypocalcemia", 3),
    _edge("Ca", "calcium", "1.64", "LL", "hypocalcemia", 3, True),
    _edge("Ca", "calcium", "1.50", "LL", "hypocalcemia", 3, True),
    _edge("Ca", "calcium", "1.49", "LL", "hypocalcemia", 4, True),
    _edge("Ca", "calcium", "2.51", "H", "hypercalcemia", 1),
    _edge("Ca", "calcium", "2.90", "H", "hypercalcemia", 1),
    _edge("Ca", "calcium", "2.91", "H", "hypercalcemia", 2),
    _edge("Ca", "calcium", "3.10", "H", "hypercalcemia", 2),
    _edge("Ca", "calcium", "3.11", "H", "hypercalcemia", 3),
    _edge("Ca", "calcium", "3.22", "H", "hypercalcemia", 3),
    _edge("Ca", "calcium", "3.23", "HH", "hypercalcemia", 3, True),
    _edge("Ca", "calcium", "3.40", "HH", "hypercalcemia", 3, True),
    _edge("Ca", "calcium", "3.41", "HH", "hypercalcemia", 4, True),
    # ionized calcium, >= 18 y 1.15-1.33, critical < 0.82 / > 1.55
    _edge("iCa", "calcium_ionized", "1.15", "N"),
    _edge("iCa", "calcium_ionized", "1.33", "N"),
    _edge("iCa", "calcium_ionized", "1.14", "L", "hypocalcemia", 1),
    _edge("iCa", "calcium_ionized", "1.00", "L", "hypocalcemia", 1),
    _edge("iCa", "calcium_ionized", "0.99", "L", "hypocalcemia", 2),
    _edge("iCa", "calcium_ionized", "0.90", "L", "hypocalcemia", 2),
    _edge("iCa", "calcium_ionized", "0.89", "L", "hypocalcemia", 3),
    _edge("iCa", "calcium_ionized", "0.82", "L", "hypocalcemia", 3),
    _edge("iCa", "calcium_ionized", "0.81", "LL", "hypocalcemia", 3, True),
    _edge("iCa", "calcium_ionized", "0.80", "LL", "hypocalcemia", 3, True),
    _edge("iCa", "calcium_ionized", "0.79", "LL", "hypocalcemia", 4, True),
    _edge("iCa", "calcium_ionized", "1.34", "H", "hypercalcemia", 1),
    _edge("iCa", "calcium_ionized", "1.50", "H", "hypercalcemia", 1),
    _edge("iCa", "calcium_ionized", "1.51", "H", "hypercalcemia", 2),
    _edge("iCa", "calcium_ionized", "1.55", "H", "hypercalcemia", 2),
    _edge("iCa", "calcium_ionized", "1.56", "HH", "hypercalcemia", 2, True),
    _edge("iCa", "calcium_ionized", "1.60", "HH", "hypercalcemia", 2, True),
    _edge("iCa", "calcium_ionized", "1.61", "HH", "hypercalcemia", 3, True),
    _edge("iCa", "calcium_ionized", "1.80", "HH", "hypercalcemia", 3, True),
    _edge("iCa", "calcium_ionized", "1.81", "HH", "hypercalcemia", 4, True),
    # ungraded analytes, adult intervals
    _edge("phosphate", "phosphate", "0.81", "N"),
    _edge("phosphate", "phosphate", "1.45", "N"),
    _edge("phosphate", "phosphate", "0.80", "L", "hypophosphatemia"),
    _edge("phosphate", "phosphate", "1.46", "H", "hyperphosphatemia"),
    _edge("albumin", "albumin", "35", "N"),
    _edge("albumin", "albumin", "50", "N"),
    _edge("albumin", "albumin", "34", "L", "hypoalbuminemia"),
    _edge("albumin", "albumin", "51", "H", "hyperalbuminemia"),
    _edge("folate", "folate", "9.1", "N"),
    _edge("folate", "folate", "9.0", "L", "folate_deficiency"),
    _edge("homocysteine", "homocysteine", "15.0", "N"),
    _edge("homocysteine", "homocysteine", "15.1", "H", "hyperhomocysteinemia"),
    _edge("PTH", "pth", "1.6", "N"),
    _edge("PTH", "pth", "6.9", "N"),
    _edge("PTH", "pth", "1.5", "L", "pth_low"),
    _edge("PTH", "pth", "7.0", "H", "pth_high"),
    _edge("MMA", "methylmalonic_acid", "0.40", "N"),
    _edge("MMA", "methylmalonic_acid", "0.41", "H", "elevated_mma"),
]


@pytest.mark.parametrize(("analyte", "value", "flag", "code", "grade", "critical"), EDGES)
def test_band_edges_grades_and_critical_limits_for_a_40_year_old(
    analyte, value, flag, code, grade, critical
):
    d = run([(analyte, value, CANONICAL_UNIT[analyte])], age=40)
    assert flag_of(d, analyte) == flag
    found = findings_of(d, analyte)
    if code is None:
        assert found == []
        return
    assert [f["code"] for f in found] == [code]
    f = found[0]
    assert f["interpretation"] == flag
    assert f["grade"] == grade
    assert f["critical"] is critical
    assert (d["priority"] == "critical") is critical


@pytest.mark.parametrize(
    "context",
    [
        pytest.param({"twitching": twitch("eyelid")}, id="twitching"),
        pytest.param({"symptoms": ("cramps",)}, id="cramps"),
        pytest.param({"symptoms": ("muscle_weakness",)}, id="muscle_weakness"),
    ],
)
def test_hypokalemia_3_0_is_grade_2_with_a_neuromuscular_symptom(context):
    d = run([("potassium", "3.0", "mmol/L")], **context)
    assert finding(d, "hypokalemia")["grade"] == 2


def test_hypokalemia_3_0_with_a_non_neuromuscular_symptom_stays_grade_1():
    d = run([("potassium", "3.0", "mmol/L")], symptoms=("fatigue", "palpitations"))
    assert finding(d, "hypokalemia")["grade"] == 1


def test_hypokalemia_2_9_is_grade_3_even_with_twitching():
    d = run([("potassium", "2.9", "mmol/L")], twitching=twitch())
    f = finding(d, "hypokalemia")
    assert f["grade"] == 3 and f["critical"] is False


# --------------------------------------------------------------------------- severity


@pytest.mark.parametrize(
    ("analyte", "value", "code", "severity"),
    [
        pytest.param("magnesium", "0.60", "hypomagnesemia", "mild", id="grade 1 is mild"),
        pytest.param("magnesium", "0.45", "hypomagnesemia", "moderate", id="grade 2 is moderate"),
        pytest.param("sodium", "124", "hyponatremia", "severe", id="grade 3 is severe"),
        pytest.param(
            "potassium", "2.4", "hypokalemia", "life_threatening", id="grade 4 is life_threatening"
        ),
        pytest.param(
            "magnesium",
            "0.40",
            "hypomagnesemia",
            "severe",
            id="critical grade 2 Mg 0.40 is at least severe",
        ),
        pytest.param(
            "calcium_ionized",
            "1.56",
            "hypercalcemia",
            "severe",
            id="critical grade 2 iCa 1.56 is at least severe",
        ),
        pytest.param(
            "vitamin_d_25oh",
            "20",
            "vitamin_d_deficiency",
            "moderate",
            id="vitamin_d_deficiency is moderate",
        ),
        pytest.param(
            "vitamin_d_25oh",
            "201",
            "vitamin_d_excess",
            "moderate",
            id="vitamin_d_excess is moderate",
        ),
        pytest.param(
            "vitamin_b12", "120", "b12_deficiency", "moderate", id="b12_deficiency is moderate"
        ),
        pytest.param(
            "vitamin_d_25oh",
            "40",
            "vitamin_d_insufficiency",
            "mild",
            id="vitamin_d_insufficiency is mild",
        ),
        pytest.param("vitamin_b12", "200", "b12_borderline", "mild", id="b12_borderline is mild"),
        pytest.param(
            "methylmalonic_acid", "0.50", "elevated_mma", "mild", id="elevated_mma is mild"
        ),
        pytest.param("albumin", "30", "hypoalbuminemia", "mild", id="hypoalbuminemia is mild"),
        pytest.param(
            "phosphate", "1.60", "hyperphosphatemia", "mild", id="hyperphosphatemia is mild"
        ),
        pytest.param("pth", "8.0", "pth_high", "mild", id="pth_high is mild"),
    ],
)
def test_severity_follows_grade_and_ungraded_codes(analyte, value, code, severity):
    d = run([(analyte, value, CANONICAL_UNIT[analyte])])
    f = finding(d, code)
    assert f["severity"] == severity


@pytest.mark.parametrize(
    ("analyte", "value", "code"),
    [
        pytest.param("vitamin_d_25oh", "20", "vitamin_d_deficiency", id="vitamin D"),
        pytest.param("vitamin_b12", "120", "b12_deficiency", id="B12"),
        pytest.param("methylmalonic_acid", "0.50", "elevated_mma", id="MMA"),
        pytest.param("phosphate", "0.70", "hypophosphatemia", id="phosphate"),
    ],
)
def test_findings_ctcae_does_not_grade_have_grade_null(analyte, value, code):
    d = run([(analyte, value, CANONICAL_UNIT[analyte])])
    assert finding(d, code)["grade"] is None


# --------------------------------------------------------------------------- age


def test_magnesium_0_67_is_normal_the_day_before_the_18th_birthday():
    d = run([("magnesium", "0.67", "mmol/L")], birth_date=date(2008, 11, 21))  # 17 y 364 d
    assert flag_of(d, "magnesium") == "N"
    assert d["findings"] == []


def test_magnesium_0_67_is_low_on_the_18th_birthday():
    d = run([("magnesium", "0.67", "mmol/L")], birth_date=date(2008, 11, 20))
    assert flag_of(d, "magnesium") == "L"
    assert finding(d, "hypomagnesemia")["reference_range"]["low"] == D("0.70")


def test_magnesium_pediatric_reference_range_is_reported_for_a_17_year_old():
    d = run([("magnesium", "0.60", "mmol/L")], birth_date=date(2008, 11, 21))
    rr = finding(d, "hypomagnesemia")["reference_range"]
    assert rr["low"] == D("0.65") and rr["high"] == D("1.10")


def test_magnesium_newborn_band_0_to_7_days_is_0_60_to_1_00():
    born = days_before(COLLECTED.date(), 5)
    assert flag_of(run([("magnesium", "0.62", "mmol/L")], birth_date=born), "magnesium") == "N"
    assert flag_of(run([("magnesium", "1.05", "mmol/L")], birth_date=born), "magnesium") == "H"


def test_magnesium_at_7_days_uses_the_7_days_to_18_years_band():
    born = days_before(COLLECTED.date(), 7)
    assert flag_of(run([("magnesium", "0.62", "mmol/L")], birth_date=born), "magnesium") == "L"
    assert flag_of(run([("magnesium", "1.05", "mmol/L")], birth_date=born), "magnesium") == "N"


def test_potassium_at_6_days_uses_the_newborn_band_3_2_to_5_7():
    born = days_before(COLLECTED.date(), 6)
    assert flag_of(run([("potassium", "5.9", "mmol/L")], birth_date=born), "potassium") == "H"
    assert flag_of(run([("potassium", "3.3", "mmol/L")], birth_date=born), "potassium") == "N"


def test_potassium_at_7_days_uses_the_infant_band_3_4_to_6_2():
    born = days_before(COLLECTED.date(), 7)
    assert flag_of(run([("potassium", "5.9", "mmol/L")], birth_date=born), "potassium") == "N"
    assert flag_of(run([("potassium", "3.3", "mmol/L")], birth_date=born), "potassium") == "L"


def test_potassium_5_5_is_normal_at_5_months_and_high_at_6_calendar_months():
    five_months = date(2026, 5, 21)  # 5 months 30 days on 2026-11-20
    six_months = date(2026, 5, 20)
    assert (
        flag_of(run([("potassium", "5.5", "mmol/L")], birth_date=five_months), "potassium") == "N"
    )
    d = run([("potassium", "5.5", "mmol/L")], birth_date=six_months)
    assert flag_of(d, "potassium") == "H"
    assert finding(d, "hyperkalemia")["grade"] == 1


@pytest.mark.parametrize(
    ("value", "flag", "grade", "critical"),
    [
        pytest.param("6.5", "H", 3, False, id="K 6.5 at 3 months is H grade 3 not critical"),
        pytest.param("7.0", "H", 3, False, id="K 7.0 at 3 months is H, critical only above 7.0"),
        pytest.param("7.1", "HH", 4, True, id="K 7.1 at 3 months is HH critical grade 4"),
    ],
)
def test_potassium_critical_high_under_6_months_is_above_7_0(value, flag, grade, critical):
    d = run([("potassium", value, "mmol/L")], birth_date=date(2026, 8, 20))
    assert flag_of(d, "potassium") == flag
    f = finding(d, "hyperkalemia")
    assert f["grade"] == grade and f["critical"] is critical
    assert d["priority"] == ("critical" if critical else "urgent")


def test_potassium_6_5_is_critical_for_an_adult():
    d = run([("potassium", "6.5", "mmol/L")])
    assert flag_of(d, "potassium") == "HH"
    assert d["priority"] == "critical"


def test_calcium_band_changes_on_the_60th_birthday():
    at_59 = date(1966, 11, 21)
    at_60 = date(1966, 11, 20)
    assert flag_of(run([("calcium", "2.52", "mmol/L")], birth_date=at_59), "calcium") == "H"
    assert flag_of(run([("calcium", "2.17", "mmol/L")], birth_date=at_59), "calcium") == "N"
    assert flag_of(run([("calcium", "2.52", "mmol/L")], birth_date=at_60), "calcium") == "N"
    d = run([("calcium", "2.17", "mmol/L")], birth_date=at_60)
    assert flag_of(d, "calcium") == "L"
    assert finding(d, "hypocalcemia")["reference_range"]["low"] == D("2.20")


def test_calcium_1_to_18_years_band_is_2_32_to_2_64():
    assert flag_of(run([("calcium", "2.30", "mmol/L")], age=10), "calcium") == "L"
    assert flag_of(run([("calcium", "2.60", "mmol/L")], age=10), "calcium") == "N"


def test_ionized_calcium_band_under_18_is_1_22_to_1_37():
    assert flag_of(run([("calcium_ionized", "1.20", "mmol/L")], age=17), "calcium_ionized") == "L"
    assert flag_of(run([("calcium_ionized", "1.20", "mmol/L")], age=18), "calcium_ionized") == "N"


@pytest.mark.parametrize(
    ("sex", "age", "value", "flag"),
    [
        pytest.param("male", 10, "1.20", "N", id="male 10 y 1.20 in 1.19-1.74"),
        pytest.param("female", 10, "1.20", "L", id="female 10 y 1.20 below 1.29"),
        pytest.param("male", 15, "1.65", "N", id="male 15 y 1.65 in 1.13-1.71"),
        pytest.param("female", 15, "1.65", "H", id="female 15 y 1.65 above 1.58"),
        pytest.param("male", 4, "1.20", "L", id="male 4 y 1.20 below 1.39"),
        pytest.param("male", 5, "1.20", "N", id="male 5 y uses 5-14 y band"),
        pytest.param("female", 7, "1.30", "L", id="female 7 y 1.30 below 1.39"),
        pytest.param("female", 8, "1.30", "N", id="female 8 y uses 8-14 y band 1.29-1.68"),
        pytest.param("female", 17, "1.00", "N", id="16-18 y any sex 1.00-1.52"),
        pytest.param("male", 17, "1.55", "H", id="16-18 y any sex above 1.52"),
        pytest.param("unknown", 17, "1.00", "N", id="sex unknown at 17 falls back to 16-18 y band"),
        pytest.param("unknown", 40, "0.80", "L", id="sex unknown adult falls back to 0.81-1.45"),
        pytest.param("unknown", 40, "1.45", "N", id="sex unknown adult 1.45 normal"),
    ],
)
def test_phosphate_sex_and_age_specific_bands(sex, age, value, flag):
    d = run([("phosphate", value, "mmol/L")], sex=sex, age=age)
    assert flag_of(d, "phosphate") == flag


def test_phosphate_for_a_10_year_old_of_unknown_sex_has_no_band_and_is_ind():
    d = run([("phosphate", "1.50", "mmol/L")], sex="unknown", age=10)
    assert flag_of(d, "phosphate") == "IND"
    assert d["status"] == "indeterminate"


def test_without_any_age_the_adult_magnesium_band_applies_with_note_age_unknown():
    d = run([("magnesium", "0.67", "mmol/L")], age=None)
    assert flag_of(d, "magnesium") == "L"
    assert "age_unknown" in note_codes(d)


def test_without_any_age_the_18_to_59_calcium_band_applies():
    d = run([("calcium", "2.52", "mmol/L")], age=None)
    assert flag_of(d, "calcium") == "H"
    assert "age_unknown" in note_codes(d)


def test_without_any_age_the_under_65_mma_limit_applies():
    d = run([("methylmalonic_acid", "0.43", "umol/L")], age=None)
    assert codes(d) == ["elevated_mma"]
    assert "age_unknown" in note_codes(d)


def test_with_an_age_there_is_no_age_unknown_note():
    d = run([("magnesium", "0.67", "mmol/L")], age=40)
    assert "age_unknown" not in note_codes(d)
    d = run([("magnesium", "0.67", "mmol/L")], birth_date=date(1990, 1, 1))
    assert "age_unknown" not in note_codes(d)


def test_birth_date_wins_over_age_years():
    d = run([("magnesium", "0.67", "mmol/L")], birth_date=date(2008, 11, 21), age=40)
    assert flag_of(d, "magnesium") == "N"  # 17 y by birth date: pediatric band
    d = run([("calcium", "2.17", "mmol/L")], birth_date=date(1966, 11, 20), age=30)
    assert flag_of(d, "calcium") == "L"  # 60 y by birth date: 2.20-2.55


def test_mma_limit_is_0_46_from_the_65th_birthday():
    at_64 = date(1961, 11, 21)
    at_65 = date(1961, 11, 20)
    assert codes(run([("methylmalonic_acid", "0.43", "umol/L")], birth_date=at_64)) == [
        "elevated_mma"
    ]
    d = run([("methylmalonic_acid", "0.43", "umol/L")], birth_date=at_65)
    assert d["findings"] == [] and flag_of(d, "methylmalonic_acid") == "N"
    assert codes(run([("methylmalonic_acid", "0.47", "umol/L")], age=65)) == ["elevated_mma"]


@pytest.mark.parametrize(
    ("analyte", "value", "age"),
    [
        pytest.param("albumin", "40", None, id="albumin at 3 months (interval from 1 y)"),
        pytest.param("phosphate", "1.50", None, id="phosphate at 3 months (interval from 1 y)"),
        pytest.param("vitamin_b12", "300", 15, id="B12 at 15 y (decision bands from 16 y)"),
        pytest.param("pth", "3.0", 10, id="PTH at 10 y (interval from 18 y)"),
    ],
)
def test_value_with_no_interval_for_the_age_is_ind_and_panel_indeterminate(analyte, value, age):
    kw = {"age": age} if age is not None else {"birth_date": date(2026, 8, 20)}
    d = run([(analyte, value, CANONICAL_UNIT[analyte])], **kw)
    assert flag_of(d, analyte) == "IND"
    assert d["findings"] == []
    assert d["status"] == "indeterminate"


# --------------------------------------------------------------------------- lab ranges


def test_lab_range_wins_and_is_compared_in_the_reported_unit_with_source_lab():
    # 1.7 mg/dL is 0.70 mmol/L (normal by the ruleset) but below the lab's 1.8 mg/dL
    d = run([("magnesium", "1.7", "mg/dL", ("1.8", "2.6"))])
    r = result_of(d, "magnesium")
    assert r["interpretation"] == "L" and r["reference_range"]["source"] == "lab"
    f = finding(d, "hypomagnesemia")
    assert f["reference_range"]["source"] == "lab"
    assert f["grade"] == 1 and f["value"] == D("0.70")


def test_lab_range_can_clear_a_value_the_ruleset_would_flag():
    d = run([("magnesium", "0.65", "mmol/L", ("0.60", "1.00"))])
    assert flag_of(d, "magnesium") == "N"
    assert d["findings"] == [] and d["status"] == "normal"


def test_lab_range_is_compared_with_the_unrounded_value():
    # 5.14 rounds to 5.1 (normal by rounding) but 5.14 > 5.1 as reported
    d = run([("potassium", "5.14", "mmol/L", ("3.5", "5.1"))])
    assert flag_of(d, "potassium") == "H"
    f = finding(d, "hyperkalemia")
    assert f["value"] == D("5.1") and f["grade"] == 1
    # 3.46 rounds to 3.5 but 3.46 < 3.5 as reported
    d = run([("potassium", "3.46", "mmol/L", ("3.5", "5.1"))])
    assert flag_of(d, "potassium") == "L"
    assert finding(d, "hypokalemia")["grade"] == 1


def test_one_sided_lab_range_low_only_flags_below_it():
    d = run([("potassium", "3.5", "mmol/L", ("3.6", None))])
    assert flag_of(d, "potassium") == "L"
    assert finding(d, "hypokalemia")["reference_range"]["source"] == "lab"
    assert flag_of(run([("potassium", "3.7", "mmol/L", ("3.6", None))]), "potassium") == "N"


def test_one_sided_lab_range_high_only_flags_above_it():
    d = run([("magnesium", "1.05", "mmol/L", (None, "1.00"))])
    assert flag_of(d, "magnesium") == "H"
    assert codes(d) == ["hypermagnesemia"]


@pytest.mark.parametrize(
    ("analyte", "value", "lab", "flag", "code"),
    [
        pytest.param(
            "potassium",
            "2.7",
            ("2.0", "5.0"),
            "LL",
            "hypokalemia",
            id="K 2.7 with lab 2.0-5.0 is LL critical",
        ),
        pytest.param(
            "potassium",
            "6.5",
            ("3.0", "7.0"),
            "HH",
            "hyperkalemia",
            id="K 6.5 with lab 3.0-7.0 is HH critical",
        ),
        pytest.param(
            "magnesium",
            "0.40",
            ("0.30", "1.00"),
            "LL",
            "hypomagnesemia",
            id="Mg 0.40 with lab 0.30-1.00 is LL critical",
        ),
        pytest.param(
            "sodium",
            "118",
            ("110", "150"),
            "LL",
            "hyponatremia",
            id="Na 118 with lab 110-150 is LL critical",
        ),
        pytest.param(
            "calcium_ionized",
            "1.60",
            ("1.00", "1.70"),
            "HH",
            "hypercalcemia",
            id="iCa 1.60 with lab 1.00-1.70 is HH critical",
        ),
    ],
)
def test_critical_limits_apply_inside_a_lab_range(analyte, value, lab, flag, code):
    d = run([(analyte, value, "mmol/L", lab)])
    assert flag_of(d, analyte) == flag
    f = finding(d, code)
    assert f["critical"] is True
    assert d["priority"] == "critical"


def test_creatinine_without_lab_range_is_ind_and_the_panel_indeterminate_not_normal():
    d = run([("creatinine", "80", "umol/L")])
    r = result_of(d, "creatinine")
    assert r["interpretation"] == "IND"
    assert r["reference_range"] is None
    assert d["findings"] == []
    assert d["status"] == "indeterminate"
    assert d["priority"] == "routine"


def test_creatinine_with_lab_range_is_judged():
    assert codes(run([("creatinine", "100", "umol/L", ("45", "90"))])) == ["creatinine_high"]
    assert codes(run([("creatinine", "40", "umol/L", ("45", "90"))])) == ["creatinine_low"]
    d = run([("creatinine", "80", "umol/L", ("45", "90"))])
    assert flag_of(d, "creatinine") == "N" and d["status"] == "normal"


def test_creatinine_in_mg_dl_is_compared_with_a_lab_range_in_mg_dl():
    d = run([("creatinine", "1.2", "mg/dL", ("0.5", "1.1"))])
    assert flag_of(d, "creatinine") == "H"
    f = finding(d, "creatinine_high")
    assert f["value"] == D("106")  # 1.2 x 88.4 = 106.08
    assert f["reference_range"]["source"] == "lab"


def test_an_ind_result_beside_a_finding_leaves_the_panel_flagged():
    d = run([("creatinine", "80", "umol/L"), ("magnesium", "0.60", "mmol/L")])
    assert d["status"] == "flagged"


# --------------------------------------------------------------------------- vitamin D


@pytest.mark.parametrize(
    ("value", "unit", "code"),
    [
        pytest.param("29", "nmol/L", "vitamin_d_deficiency", id="29 deficiency"),
        pytest.param("30", "nmol/L", "vitamin_d_insufficiency", id="30 insufficiency"),
        pytest.param("49", "nmol/L", "vitamin_d_insufficiency", id="49 insufficiency"),
        pytest.param("50", "nmol/L", None, id="50 adequate"),
        pytest.param("200", "nmol/L", None, id="200 adequate"),
        pytest.param("201", "nmol/L", "vitamin_d_excess", id="201 excess"),
        pytest.param(
            "11.8", "ng/mL", "vitamin_d_deficiency", id="11.8 ng/mL = 29.45 -> 29 deficiency"
        ),
        pytest.param(
            "12", "ng/mL", "vitamin_d_insufficiency", id="12 ng/mL = 29.952 -> 30 insufficiency"
        ),
        pytest.param("80.3", "ng/mL", None, id="80.3 ng/mL = 200.43 -> 200 adequate"),
        pytest.param("80.4", "ng/mL", "vitamin_d_excess", id="80.4 ng/mL = 200.68 -> 201 excess"),
    ],
)
def test_vitamin_d_decision_bands_under_2026_1(value, unit, code):
    d = run([("vitamin_d_25oh", value, unit)])
    assert codes(d) == ([code] if code else [])


@pytest.mark.parametrize("value", ["20", "40", "201"])
def test_vitamin_d_finding_reference_range_is_the_adequate_band_50_to_200(value):
    d = run([("vitamin_d_25oh", value, "nmol/L")])
    rr = d["findings"][0]["reference_range"]
    assert rr["low"] == 50 and rr["high"] == 200


@pytest.mark.parametrize(
    ("value", "code"),
    [
        pytest.param("29", "vitamin_d_deficiency", id="29 deficiency"),
        pytest.param("49", "vitamin_d_deficiency", id="49 deficiency"),
        pytest.param("50", "vitamin_d_insufficiency", id="50 insufficiency"),
        pytest.param("74", "vitamin_d_insufficiency", id="74 insufficiency"),
        pytest.param("75", None, id="75 adequate"),
    ],
)
def test_vitamin_d_decision_bands_under_2026_2(value, code):
    d = run([("vitamin_d_25oh", value, "nmol/L")], ruleset="2026.2")
    assert d["ruleset"] == "2026.2"
    assert codes(d) == ([code] if code else [])


def test_vitamin_d_2026_2_finding_reference_range_starts_at_75():
    d = run([("vitamin_d_25oh", "60", "nmol/L")], ruleset="2026.2")
    assert finding(d, "vitamin_d_insufficiency")["reference_range"]["low"] == 75


def test_vitamin_d_decision_band_decides_the_finding_despite_a_lab_range():
    d = run([("vitamin_d_25oh", "40", "nmol/L", ("30", "100"))])
    assert flag_of(d, "vitamin_d_25oh") == "N"  # the lab range sets L/N/H
    f = finding(d, "vitamin_d_insufficiency")
    assert f["reference_range"]["low"] == 50 and f["reference_range"]["high"] == 200


def test_vitamin_d_below_a_lab_range_but_adequate_by_the_guideline_has_no_finding():
    d = run([("vitamin_d_25oh", "60", "nmol/L", ("75", "250"))])
    assert flag_of(d, "vitamin_d_25oh") == "L"
    assert d["findings"] == []


# --------------------------------------------------------------------------- 2026.2 magnesium


def test_adult_magnesium_0_80_is_normal_under_2026_1_and_low_under_2026_2():
    d1 = run([("magnesium", "0.80", "mmol/L")], ruleset="2026.1")
    assert d1["ruleset"] == "2026.1"
    assert flag_of(d1, "magnesium") == "N" and d1["findings"] == []
    d2 = run([("magnesium", "0.80", "mmol/L")], ruleset="2026.2")
    assert d2["ruleset"] == "2026.2"
    assert flag_of(d2, "magnesium") == "L"
    f = finding(d2, "hypomagnesemia")
    assert f["grade"] == 1
    assert f["reference_range"]["low"] == D("0.85")


def test_adult_magnesium_0_85_is_normal_and_0_84_low_under_2026_2():
    assert flag_of(run([("magnesium", "0.85", "mmol/L")], ruleset="2026.2"), "magnesium") == "N"
    assert flag_of(run([("magnesium", "0.84", "mmol/L")], ruleset="2026.2"), "magnesium") == "L"


@pytest.mark.parametrize("version", ["2026.1", "2026.2"])
def test_pediatric_magnesium_bands_are_unchanged_in_2026_2(version):
    assert (
        flag_of(run([("magnesium", "0.80", "mmol/L")], age=10, ruleset=version), "magnesium") == "N"
    )
    d = run([("magnesium", "0.67", "mmol/L")], birth_date=date(2008, 11, 21), ruleset=version)
    assert flag_of(d, "magnesium") == "N"


# --------------------------------------------------------------------------- B12 and MMA


@pytest.mark.parametrize(
    ("value", "unit", "code"),
    [
        pytest.param("132", "pmol/L", "b12_deficiency", id="132 deficiency"),
        pytest.param("133", "pmol/L", "b12_borderline", id="133 borderline"),
        pytest.param("258", "pmol/L", "b12_borderline", id="258 borderline"),
        pytest.param("259", "pmol/L", None, id="259 normal"),
        pytest.param("179", "pg/mL", "b12_deficiency", id="179 pg/mL = 132.07 -> 132 deficiency"),
        pytest.param("180", "pg/mL", "b12_borderline", id="180 pg/mL = 132.80 -> 133 borderline"),
        pytest.param("350", "pg/mL", "b12_borderline", id="350 pg/mL = 258.23 -> 258 borderline"),
        pytest.param("351", "pg/mL", None, id="351 pg/mL = 258.97 -> 259 normal"),
    ],
)
def test_b12_decision_bands(value, unit, code):
    d = run([("vitamin_b12", value, unit)])
    assert codes(d) == ([code] if code else [])
    if code is None:
        assert flag_of(d, "vitamin_b12") == "N"


def test_b12_borderline_without_mma_gets_follow_up_check_mma():
    d = run([("vitamin_b12", "200", "pmol/L")])
    assert follow_ups(d).count("check_mma") == 1


def test_b12_deficiency_below_133_gets_no_check_mma():
    assert "check_mma" not in follow_ups(run([("vitamin_b12", "120", "pmol/L")]))


@pytest.mark.parametrize("value", ["120", "200"])
def test_b12_finding_reference_range_low_is_259(value):
    d = run([("vitamin_b12", value, "pmol/L")])
    assert d["findings"][0]["reference_range"]["low"] == 259


def test_b12_133_to_258_with_mma_above_its_limit_is_deficiency_with_elevated_mma():
    d = run([("vitamin_b12", "200", "pmol/L"), ("methylmalonic_acid", "0.50", "umol/L")])
    assert codes(d) == ["b12_deficiency", "elevated_mma"]
    assert "check_mma" not in follow_ups(d)


def test_b12_133_to_258_with_mma_within_its_limit_is_no_finding_and_note_unlikely():
    d = run([("vitamin_b12", "200", "pmol/L"), ("methylmalonic_acid", "0.40", "umol/L")])
    assert d["findings"] == []
    assert "b12_deficiency_unlikely" in note_codes(d)
    assert "check_mma" not in follow_ups(d)
    assert d["status"] == "normal"


def test_b12_below_133_is_deficiency_even_with_normal_mma():
    d = run([("vitamin_b12", "120", "pmol/L"), ("methylmalonic_acid", "0.30", "umol/L")])
    assert codes(d) == ["b12_deficiency"]
    assert "b12_deficiency_unlikely" not in note_codes(d)


def test_mma_limit_from_a_lab_range_decides_borderline_b12():
    d = run(
        [("vitamin_b12", "200", "pmol/L"), ("methylmalonic_acid", "0.45", "umol/L", (None, "0.50"))]
    )
    assert d["findings"] == []
    assert "b12_deficiency_unlikely" in note_codes(d)


def test_mma_age_band_at_65_decides_borderline_b12():
    results = [("vitamin_b12", "200", "pmol/L"), ("methylmalonic_acid", "0.43", "umol/L")]
    assert codes(run(results, birth_date=date(1961, 11, 21))) == ["b12_deficiency", "elevated_mma"]
    d = run(results, birth_date=date(1961, 11, 20))
    assert d["findings"] == []
    assert "b12_deficiency_unlikely" in note_codes(d)


def test_b12_180_pg_ml_with_lab_range_150_900_is_n_by_lab_but_borderline_by_guideline():
    d = run([("vitamin_b12", "180", "pg/mL", ("150", "900"))])
    r = result_of(d, "vitamin_b12")
    assert r["interpretation"] == "N"
    assert r["reference_range"]["source"] == "lab"
    f = finding(d, "b12_borderline")
    assert f["value"] == 133
    assert f["reference_range"]["low"] == 259


def test_b12_above_the_lab_range_is_h_in_results_with_no_finding():
    d = run([("vitamin_b12", "1000", "pg/mL", ("200", "900"))])
    assert flag_of(d, "vitamin_b12") == "H"
    assert d["findings"] == []


def test_folate_above_the_lab_range_is_h_with_no_finding():
    d = run([("folate", "50", "nmol/L", ("10", "45"))])
    assert flag_of(d, "folate") == "H"
    assert d["findings"] == []


@pytest.mark.parametrize(
    ("analyte", "value", "lab"),
    [
        pytest.param("methylmalonic_acid", "0.05", ("0.07", "0.40"), id="MMA"),
        pytest.param("homocysteine", "4.0", ("5", "15"), id="homocysteine"),
    ],
)
def test_mma_or_homocysteine_below_the_lab_range_is_l_with_no_finding(analyte, value, lab):
    d = run([(analyte, value, "umol/L", lab)])
    assert flag_of(d, analyte) == "L"
    assert d["findings"] == []


def test_elevated_mma_without_creatinine_gets_check_renal_function():
    assert "check_renal_function" in follow_ups(run([("methylmalonic_acid", "0.50", "umol/L")]))


def test_elevated_mma_with_creatinine_measured_gets_no_check_renal_function():
    d = run(
        [("methylmalonic_acid", "0.50", "umol/L"), ("creatinine", "80", "umol/L", ("45", "90"))]
    )
    assert "check_renal_function" not in follow_ups(d)


# --------------------------------------------------------------------------- calcium


def test_ionized_calcium_decides_and_low_total_calcium_gives_no_finding():
    d = run([("calcium", "1.90", "mmol/L"), ("calcium_ionized", "1.20", "mmol/L")])
    assert findings_of(d, "calcium") == []
    assert "hypocalcemia" not in codes(d)
    assert "pseudohypocalcemia" in note_codes(d)
    assert "check_ionized_calcium" not in follow_ups(d)
    assert "check_albumin" not in follow_ups(d)


def test_ionized_calcium_decides_and_high_total_calcium_gives_no_finding():
    d = run([("calcium", "2.80", "mmol/L"), ("calcium_ionized", "1.20", "mmol/L")])
    assert "hypercalcemia" not in codes(d)


def test_low_ionized_calcium_is_hypocalcemia_even_with_normal_total():
    d = run([("calcium", "2.30", "mmol/L"), ("calcium_ionized", "1.05", "mmol/L")])
    f = finding(d, "hypocalcemia")
    assert f["analyte"] == "calcium_ionized"
    assert f["grade"] == 1


def test_low_total_calcium_corrected_to_normal_by_low_albumin_is_pseudohypocalcemia():
    # corrected = 2.00 + 0.02 x (40 - 30) = 2.20, normal for 40 y (2.15-2.50)
    d = run([("calcium", "2.00", "mmol/L"), ("albumin", "30", "g/L")])
    assert "hypocalcemia" not in codes(d)
    assert "pseudohypocalcemia" in note_codes(d)
    assert "check_ionized_calcium" in follow_ups(d)
    assert "check_albumin" not in follow_ups(d)


def test_corrected_calcium_is_the_finding_value_and_measured_is_kept():
    # corrected = 1.90 + 0.02 x 10 = 2.10 < 2.15: hypocalcemia grade 1
    d = run([("calcium", "1.90", "mmol/L"), ("albumin", "30", "g/L")])
    f = finding(d, "hypocalcemia")
    assert f["value"] == D("2.10")
    assert measured_value(f) == D("1.90")
    assert f["grade"] == 1
    assert "pseudohypocalcemia" not in note_codes(d)


def test_albumin_is_rounded_to_whole_g_l_before_correcting():
    # 3.25 g/dL = 32.5 -> 33 g/L; corrected = 2.00 + 0.02 x 7 = 2.14 < 2.15 (32.5 would give 2.15)
    d = run([("calcium", "2.00", "mmol/L"), ("albumin", "3.25", "g/dL")])
    f = finding(d, "hypocalcemia")
    assert f["value"] == D("2.14")


def test_api_example_calcium_8_1_mg_dl_with_albumin_3_2_g_dl_corrects_to_2_18_normal():
    # 8.1 x 0.2495 = 2.02; albumin 32 g/L; 2.02 + 0.02 x 8 = 2.18 in 2.15-2.50
    d = run([("calcium", "8.1", "mg/dL"), ("albumin", "3.2", "g/dL")])
    assert "hypocalcemia" not in codes(d)
    assert "pseudohypocalcemia" in note_codes(d)
    assert "check_ionized_calcium" in follow_ups(d)


@pytest.mark.parametrize("albumin", ["40", "45"])
def test_albumin_40_or_more_does_not_correct_calcium(albumin):
    d = run([("calcium", "2.10", "mmol/L"), ("albumin", albumin, "g/L")])
    f = finding(d, "hypocalcemia")
    assert f["value"] == D("2.10")
    assert "check_albumin" not in follow_ups(d)


def test_already_corrected_calcium_29265_6_is_never_corrected_again():
    d = run([by_loinc("29265-6", "2.10", "mmol/L"), ("albumin", "30", "g/L")])
    f = finding(d, "hypocalcemia")
    assert f["analyte"] == "calcium"
    assert f["value"] == D("2.10")  # not 2.30
    assert "pseudohypocalcemia" not in note_codes(d)


def test_low_total_calcium_without_albumin_or_ionized_gets_check_albumin():
    d = run([("calcium", "2.10", "mmol/L")])
    assert codes(d) == ["hypocalcemia"]
    assert "check_albumin" in follow_ups(d)


def test_calcium_critical_limit_applies_to_the_measured_value():
    # measured 1.60 < 1.65 is critical although corrected 1.60 + 0.40 = 2.00 (grade 1)
    d = run([("calcium", "1.60", "mmol/L"), ("albumin", "20", "g/L")])
    f = finding(d, "hypocalcemia")
    assert f["critical"] is True
    assert f["value"] == D("2.00") and measured_value(f) == D("1.60")
    assert f["grade"] == 1
    assert f["severity"] == "severe"  # a critical finding is at least severe
    assert d["priority"] == "critical"


def test_corrected_calcium_above_3_22_is_not_critical_when_measured_is_below():
    # measured 3.20; corrected 3.20 + 0.02 x 20 = 3.60: grade 4, not critical
    d = run([("calcium", "3.20", "mmol/L"), ("albumin", "20", "g/L")])
    f = finding(d, "hypercalcemia")
    assert f["value"] == D("3.60")
    assert f["grade"] == 4
    assert f["critical"] is False
    assert f["severity"] == "life_threatening"
    assert d["priority"] == "urgent"


def test_lab_range_is_compared_with_the_corrected_calcium_in_the_lab_unit_and_clears():
    # 9.0 mg/dL = 2.2455 -> 2.25; albumin 20 g/L; corrected 2.65 mmol/L = 10.62 mg/dL within
    # the lab's 8.0-11.0 (the ruleset's 2.50 would flag it)
    d = run([("calcium", "9.0", "mg/dL", ("8.0", "11.0")), ("albumin", "2.0", "g/dL")])
    assert "hypercalcemia" not in codes(d)


def test_lab_range_is_compared_with_the_corrected_calcium_in_the_lab_unit_and_flags():
    # 8.8 mg/dL = 2.1956 -> 2.20; albumin 38 g/L; corrected 2.24 mmol/L = 8.98 mg/dL below
    # the lab's 9.0 (the ruleset's 2.15 would call it normal)
    d = run([("calcium", "8.8", "mg/dL", ("9.0", "10.5")), ("albumin", "3.8", "g/dL")])
    f = finding(d, "hypocalcemia")
    assert f["value"] == D("2.24")
    assert f["reference_range"]["source"] == "lab"
    assert f["grade"] == 1


# --------------------------------------------------------------------------- hemolysis


def test_hemolyzed_hyperkalemia_is_possibly_spurious_with_repeat_potassium():
    d = run([("potassium", "5.8", "mmol/L")], hemolyzed=True)
    f = finding(d, "hyperkalemia")
    assert f["possibly_spurious"] is True
    assert "repeat_potassium" in follow_ups(d)


def test_hyperkalemia_without_hemolysis_is_not_possibly_spurious():
    d = run([("potassium", "5.8", "mmol/L")])
    assert finding(d, "hyperkalemia")["possibly_spurious"] is False
    assert "repeat_potassium" not in follow_ups(d)


def test_hemolyzed_critical_potassium_stays_critical():
    d = run([("potassium", "6.5", "mmol/L")], hemolyzed=True)
    f = finding(d, "hyperkalemia")
    assert f["critical"] is True and f["possibly_spurious"] is True
    assert flag_of(d, "potassium") == "HH"
    assert d["priority"] == "critical"


def test_hemolyzed_normal_potassium_still_gets_repeat_potassium():
    d = run([("potassium", "4.0", "mmol/L")], hemolyzed=True)
    assert d["findings"] == []
    assert follow_ups(d) == ["repeat_potassium"]
    assert d["status"] == "normal"


def test_hemolyzed_hypokalemia_is_not_possibly_spurious_but_gets_repeat_potassium():
    d = run([("potassium", "3.2", "mmol/L")], hemolyzed=True)
    assert finding(d, "hypokalemia")["possibly_spurious"] is False
    assert "repeat_potassium" in follow_ups(d)


def test_hemolyzed_hypermagnesemia_is_possibly_spurious():
    d = run([("magnesium", "1.20", "mmol/L")], hemolyzed=True)
    assert finding(d, "hypermagnesemia")["possibly_spurious"] is True
    assert "repeat_potassium" not in follow_ups(d)


def test_hemolyzed_hypomagnesemia_is_not_possibly_spurious():
    d = run([("magnesium", "0.60", "mmol/L")], hemolyzed=True)
    assert finding(d, "hypomagnesemia")["possibly_spurious"] is False


# --------------------------------------------------------------------------- red flags

NORMAL_K = [("potassium", "4.0", "mmol/L")]


def test_twitching_14_days_is_not_persistent():
    d = run(NORMAL_K, twitching=twitch("eyelid", days=14))
    assert "persistent_twitching" not in red_flags(d)
    assert d["status"] == "normal" and d["priority"] == "routine"


def test_twitching_15_days_is_persistent_not_urgent():
    d = run(NORMAL_K, twitching=twitch("eyelid", days=15))
    assert red_flags(d) == {"persistent_twitching": False}
    assert d["status"] == "flagged"
    assert d["priority"] == "routine"
    assert follow_ups(d) == ["clinical_evaluation"]


def test_same_site_in_two_spellings_counts_once():
    d = run(NORMAL_K, twitching=twitch("Toes", "toes"))
    assert "multifocal_twitching" not in red_flags(d)


def test_twitching_in_two_sites_is_multifocal_not_urgent():
    d = run(NORMAL_K, twitching=twitch("toes", "calf"))
    assert red_flags(d) == {"multifocal_twitching": False}


@pytest.mark.parametrize(
    ("symptoms", "code", "urgent"),
    [
        pytest.param(("stiffness",), "stiffness", False, id="stiffness"),
        pytest.param(("numbness",), "sensory_symptoms", False, id="numbness is sensory_symptoms"),
        pytest.param(("tingling",), "sensory_symptoms", False, id="tingling is sensory_symptoms"),
        pytest.param(
            ("numbness", "tingling"), "sensory_symptoms", False, id="numbness and tingling once"
        ),
        pytest.param(
            ("muscle_weakness",),
            "weakness",
            True,
            id="muscle_weakness with twitching is weakness urgent",
        ),
        pytest.param(("muscle_wasting",), "muscle_wasting", True, id="muscle_wasting urgent"),
        pytest.param(
            ("walking_difficulty",), "walking_difficulty", True, id="walking_difficulty urgent"
        ),
        pytest.param(
            ("slurred_speech",), "bulbar_symptoms", True, id="slurred_speech is bulbar urgent"
        ),
        pytest.param(
            ("swallowing_difficulty",),
            "bulbar_symptoms",
            True,
            id="swallowing_difficulty is bulbar urgent",
        ),
        pytest.param(
            ("breathing_difficulty",),
            "bulbar_symptoms",
            True,
            id="breathing_difficulty is bulbar urgent",
        ),
        pytest.param(
            ("slurred_speech", "swallowing_difficulty", "breathing_difficulty"),
            "bulbar_symptoms",
            True,
            id="three bulbar symptoms are one red flag",
        ),
    ],
)
def test_red_flag_for_symptom_with_twitching(symptoms, code, urgent):
    d = run(NORMAL_K, twitching=twitch("eyelid", days=3), symptoms=symptoms)
    assert red_flags(d) == {code: urgent}
    assert d["status"] == "flagged"
    fu = follow_ups(d)
    assert "clinical_evaluation" in fu
    if urgent:
        assert d["priority"] == "urgent"
        assert "urgent_neurology_referral" in fu
    else:
        assert d["priority"] == "routine"
        assert "urgent_neurology_referral" not in fu


def test_muscle_weakness_without_twitching_is_not_the_weakness_red_flag():
    d = run(NORMAL_K, symptoms=("muscle_weakness",))
    assert "weakness" not in red_flags(d)


def test_muscle_wasting_is_a_red_flag_without_twitching():
    d = run(NORMAL_K, symptoms=("muscle_wasting",))
    assert red_flags(d) == {"muscle_wasting": True}
    assert d["priority"] == "urgent"


def test_short_single_site_twitching_alone_raises_no_red_flag():
    d = run(NORMAL_K, twitching=twitch("eyelid", days=3), symptoms=("fatigue", "palpitations"))
    assert d["red_flags"] == []
    assert d["status"] == "normal"


def test_red_flags_have_a_detail():
    d = run(
        NORMAL_K,
        twitching=twitch("toes", "calf", days=30),
        symptoms=("muscle_weakness", "numbness", "stiffness"),
    )
    assert set(red_flags(d)) == {
        "persistent_twitching",
        "multifocal_twitching",
        "weakness",
        "sensory_symptoms",
        "stiffness",
    }
    assert all(isinstance(rf["detail"], str) and rf["detail"] for rf in d["red_flags"])


# --------------------------------------------------------------------------- contributing factors


def test_loop_diuretic_relates_to_hypokalemia_and_hypomagnesemia():
    d = run(
        [("potassium", "3.2", "mmol/L"), ("magnesium", "0.60", "mmol/L")],
        medications=("loop_diuretic",),
    )
    assert factors(d) == {"loop_diuretic": {"hypokalemia", "hypomagnesemia"}}
    assert all(cf["detail"] for cf in d["contributing_factors"])


def test_thiazide_with_only_hypokalemia_relates_to_hypokalemia_only():
    d = run(
        [("potassium", "3.2", "mmol/L"), ("magnesium", "0.80", "mmol/L")],
        medications=("thiazide_diuretic",),
    )
    assert factors(d) == {"thiazide_diuretic": {"hypokalemia"}}


def test_factor_is_not_listed_when_nothing_it_relates_to_is_present():
    d = run(
        [("potassium", "4.0", "mmol/L"), ("magnesium", "0.80", "mmol/L")],
        medications=("loop_diuretic", "proton_pump_inhibitor"),
        factors=("caffeine",),
    )
    assert d["contributing_factors"] == []


def test_caffeine_relates_to_twitching_only_when_twitching_is_present():
    assert factors(run(NORMAL_K, factors=("caffeine",), twitching=twitch())) == {
        "caffeine": {"twitching"}
    }
    assert factors(run(NORMAL_K, factors=("caffeine",))) == {}


@pytest.mark.parametrize(
    "factor", ["caffeine", "stress", "fatigue", "recent_illness", "tight_footwear"]
)
def test_twitching_factors_relate_to_twitching(factor):
    d = run(NORMAL_K, factors=(factor,), twitching=twitch())
    assert factors(d) == {factor: {"twitching"}}
    assert all(cf["detail"] for cf in d["contributing_factors"])


def test_ppi_relates_to_hypomagnesemia_and_b12_findings():
    d = run(
        [("magnesium", "0.60", "mmol/L"), ("vitamin_b12", "120", "pmol/L")],
        medications=("proton_pump_inhibitor",),
    )
    assert factors(d) == {"proton_pump_inhibitor": {"hypomagnesemia", "b12_deficiency"}}
    d = run([("vitamin_b12", "200", "pmol/L")], medications=("proton_pump_inhibitor",))
    assert factors(d) == {"proton_pump_inhibitor": {"b12_borderline"}}


@pytest.mark.parametrize("medication", ["h2_blocker", "metformin", "colchicine"])
def test_b12_medications_relate_to_b12_findings_only(medication):
    d = run([("vitamin_b12", "120", "pmol/L")], medications=(medication,))
    assert factors(d) == {medication: {"b12_deficiency"}}
    d = run([("magnesium", "0.60", "mmol/L")], medications=(medication,))
    assert factors(d) == {}


def test_digoxin_relates_to_hypokalemia():
    d = run([("potassium", "3.2", "mmol/L")], medications=("digoxin",))
    assert factors(d) == {"digoxin": {"hypokalemia"}}


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("medications", "aminoglycoside"),
        ("medications", "cisplatin"),
        ("medications", "calcineurin_inhibitor"),
        ("medications", "laxative"),
        ("factors", "intense_exercise"),
        ("factors", "diabetes"),
    ],
)
def test_magnesium_wasting_causes_relate_to_hypomagnesemia(kind, code):
    d = run([("magnesium", "0.60", "mmol/L")], **{kind: (code,)})
    assert factors(d) == {code: {"hypomagnesemia"}}


def test_alcohol_is_listed_once_relating_to_hypomagnesemia_and_twitching():
    d = run([("magnesium", "0.60", "mmol/L")], factors=("alcohol",), twitching=twitch())
    assert [cf["code"] for cf in d["contributing_factors"]] == ["alcohol"]
    assert factors(d) == {"alcohol": {"hypomagnesemia", "twitching"}}


def test_dehydration_relates_to_electrolyte_findings_and_elevated_mma():
    d = run(
        [("sodium", "150", "mmol/L"), ("methylmalonic_acid", "0.50", "umol/L")],
        factors=("dehydration",),
    )
    assert factors(d) == {"dehydration": {"hypernatremia", "elevated_mma"}}


def test_dehydration_does_not_relate_to_vitamin_d_deficiency():
    d = run([("vitamin_d_25oh", "20", "nmol/L")], factors=("dehydration",))
    assert factors(d) == {}


def test_gadolinium_relates_to_pseudohypocalcemia_note_or_hypocalcemia():
    d = run(
        [("calcium", "2.00", "mmol/L"), ("albumin", "30", "g/L")], factors=("gadolinium_contrast",)
    )
    assert factors(d) == {"gadolinium_contrast": {"pseudohypocalcemia"}}
    d = run([("calcium", "1.90", "mmol/L")], factors=("gadolinium_contrast",))
    assert factors(d) == {"gadolinium_contrast": {"hypocalcemia"}}


@pytest.mark.parametrize(
    "factor", ["biotin_supplement", "recent_b12_injection", "pregnancy", "vegan_diet"]
)
def test_b12_related_factors_relate_to_b12_findings(factor):
    d = run([("vitamin_b12", "200", "pmol/L")], factors=(factor,))
    assert factors(d) == {factor: {"b12_borderline"}}


# --------------------------------------------------------------------------- follow-ups


def test_hypokalemia_without_magnesium_measured_gets_check_magnesium():
    assert "check_magnesium" in follow_ups(run([("potassium", "3.2", "mmol/L")]))


def test_hypokalemia_with_magnesium_measured_gets_no_check_magnesium():
    d = run([("potassium", "3.2", "mmol/L"), ("magnesium", "0.80", "mmol/L")])
    assert "check_magnesium" not in follow_ups(d)


def test_hypocalcemia_without_magnesium_vitamin_d_pth_gets_those_checks():
    fu = follow_ups(run([("calcium", "1.90", "mmol/L")]))
    for code in ("check_magnesium", "check_vitamin_d", "check_pth", "check_albumin"):
        assert code in fu


def test_hypocalcemia_with_vitamin_d_and_pth_measured_gets_neither_check():
    d = run(
        [
            ("calcium", "1.90", "mmol/L"),
            ("vitamin_d_25oh", "60", "nmol/L"),
            ("pth", "5.0", "pmol/L"),
        ]
    )
    fu = follow_ups(d)
    assert "check_vitamin_d" not in fu and "check_pth" not in fu


def test_vitamin_d_deficiency_without_calcium_or_pth_gets_check_calcium_and_check_pth():
    assert follow_ups(run([("vitamin_d_25oh", "20", "nmol/L")])) == ["check_calcium", "check_pth"]


def test_vitamin_d_deficiency_with_ionized_calcium_gets_no_check_calcium():
    d = run([("vitamin_d_25oh", "20", "nmol/L"), ("calcium_ionized", "1.20", "mmol/L")])
    assert follow_ups(d) == ["check_pth"]


def test_vitamin_d_insufficiency_gets_no_calcium_or_pth_check():
    assert follow_ups(run([("vitamin_d_25oh", "40", "nmol/L")])) == []


def test_check_pth_is_listed_once_for_two_reasons():
    d = run([("vitamin_d_25oh", "20", "nmol/L"), ("calcium", "1.90", "mmol/L")])
    fu = follow_ups(d)
    assert fu.count("check_pth") == 1
    assert "check_calcium" not in fu and "check_vitamin_d" not in fu
    assert len(fu) == len(set(fu))


def test_sensory_symptoms_without_b12_get_check_b12():
    d = run(NORMAL_K, twitching=twitch(), symptoms=("tingling",))
    assert "check_b12" in follow_ups(d)


def test_sensory_symptoms_with_b12_measured_get_no_check_b12():
    d = run([("vitamin_b12", "300", "pmol/L")], twitching=twitch(), symptoms=("tingling",))
    assert "check_b12" not in follow_ups(d)


def test_follow_ups_come_once_each_in_the_order_of_clinical_md_with_reasons():
    d = run(
        [("potassium", "3.2", "mmol/L"), ("vitamin_b12", "200", "pmol/L")],
        hemolyzed=True,
        twitching=twitch(),
        symptoms=("muscle_weakness",),
    )
    assert follow_ups(d) == [
        "check_magnesium",
        "check_mma",
        "repeat_potassium",
        "clinical_evaluation",
        "urgent_neurology_referral",
    ]
    assert all(isinstance(f["reason"], str) and f["reason"] for f in d["follow_up"])


# --------------------------------------------------------------------------- status and priority


def test_normal_panel_is_status_normal_priority_routine():
    d = run(
        [
            ("magnesium", "0.85", "mmol/L"),
            ("potassium", "4.2", "mmol/L"),
            ("sodium", "140", "mmol/L"),
        ]
    )
    assert d["status"] == "normal" and d["priority"] == "routine"
    assert d["findings"] == [] and d["red_flags"] == []
    assert all(r["interpretation"] == "N" for r in d["results"])
    assert len(d["results"]) == 3


def test_mild_finding_is_flagged_routine():
    d = run([("magnesium", "0.65", "mmol/L")])
    assert d["status"] == "flagged" and d["priority"] == "routine"


def test_potassium_2_6_is_critical_ll_and_ctcae_grade_3():
    d = run([("potassium", "2.6", "mmol/L")])
    f = finding(d, "hypokalemia")
    assert f["interpretation"] == "LL" and f["critical"] is True and f["grade"] == 3
    assert f["severity"] == "severe"
    assert d["status"] == "flagged" and d["priority"] == "critical"


def test_grade_3_finding_is_urgent():
    d = run([("sodium", "124", "mmol/L")])
    assert d["priority"] == "urgent"


def test_grade_2_finding_is_routine():
    assert run([("magnesium", "0.45", "mmol/L")])["priority"] == "routine"


def test_critical_outranks_urgent_red_flag():
    d = run([("potassium", "2.6", "mmol/L")], twitching=twitch(), symptoms=("muscle_weakness",))
    assert d["priority"] == "critical"


def test_interpretation_object_exposes_status_and_priority():
    i = interpretation([("potassium", "2.6", "mmol/L")])
    assert i.status == "flagged" and i.priority == "critical"


def test_interpretation_dict_has_the_documented_keys():
    d = run([("magnesium", "0.60", "mmol/L")])
    assert set(d) >= {
        "ruleset",
        "status",
        "priority",
        "results",
        "findings",
        "red_flags",
        "contributing_factors",
        "follow_up",
        "notes",
        "summary",
    }
    assert d["ruleset"] == "2026.1"
    f = finding(d, "hypomagnesemia")
    assert set(f) >= {
        "code",
        "analyte",
        "value",
        "unit",
        "reported",
        "reference_range",
        "interpretation",
        "grade",
        "severity",
        "critical",
        "possibly_spurious",
        "explanation",
        "source",
    }
    assert f["reference_range"] == {
        "low": D("0.70"),
        "high": D("1.10"),
        "unit": "mmol/L",
        "source": "ruleset",
    }


# --------------------------------------------------------------------------- API.md example


def _api_example() -> dict:
    return run(
        [
            ("magnesium", "1.1", "mg/dL"),
            by_loinc("2823-3", "3.2", "mmol/L"),
            ("calcium", "8.1", "mg/dL"),
            ("albumin", "3.2", "g/dL"),
            ("vitamin_d_25oh", "14", "ng/mL"),
            ("vitamin_b12", "180", "pg/mL", ("200", "900")),
        ],
        sex="female",
        birth_date=date(1984, 3, 9),
        collected_at=datetime(2026, 11, 20, 8, 30, tzinfo=UTC),
        now=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
        twitching=Twitching(sites=("toes",), duration_days=21, frequency="daily"),
        symptoms=("muscle_weakness", "numbness"),
        factors=("caffeine", "stress"),
        medications=("loop_diuretic",),
        notes="free text, kept verbatim",
    )


def test_api_example_magnesium_is_0_45_low_hypomagnesemia_grade_2_moderate():
    d = _api_example()
    r = result_of(d, "magnesium")
    assert r["value"] == D("0.45") and r["unit"] == "mmol/L" and r["interpretation"] == "L"
    assert r["reference_range"] == {
        "low": D("0.70"),
        "high": D("1.10"),
        "unit": "mmol/L",
        "source": "ruleset",
    }
    f = finding(d, "hypomagnesemia")
    assert f["value"] == D("0.45") and f["unit"] == "mmol/L"
    assert f["reported"] == {"value": D("1.1"), "unit": "mg/dL"}
    assert f["reference_range"] == {
        "low": D("0.70"),
        "high": D("1.10"),
        "unit": "mmol/L",
        "source": "ruleset",
    }
    assert f["interpretation"] == "L"
    assert f["grade"] == 2 and f["severity"] == "moderate"
    assert f["critical"] is False and f["possibly_spurious"] is False
    assert "0.45" in f["explanation"] and "1.1" in f["explanation"]
    assert "0.70" in f["explanation"]
    assert f["source"]


def test_api_example_findings_red_flags_and_priority():
    d = _api_example()
    # K 3.2 with twitching: grade 2; Ca corrected 2.18 normal; albumin 32 low; vitD 35
    # insufficient; B12 180 pg/mL = 133 borderline
    assert codes(d) == sorted(
        [
            "hypomagnesemia",
            "hypokalemia",
            "hypoalbuminemia",
            "vitamin_d_insufficiency",
            "b12_borderline",
        ]
    )
    assert finding(d, "hypokalemia")["grade"] == 2
    assert finding(d, "hypokalemia")["severity"] == "moderate"
    assert result_of(d, "potassium")["interpretation"] == "L"
    assert red_flags(d) == {
        "persistent_twitching": False,
        "weakness": True,
        "sensory_symptoms": False,
    }
    assert d["status"] == "flagged"
    assert d["priority"] == "urgent"


def test_api_example_b12_is_low_by_the_lab_range_and_borderline_by_the_guideline():
    d = _api_example()
    r = result_of(d, "vitamin_b12")
    assert r["value"] == 133 and r["interpretation"] == "L"
    assert r["reference_range"]["source"] == "lab"
    assert finding(d, "b12_borderline")["reference_range"]["low"] == 259


def test_api_example_contributing_factors_follow_ups_and_notes():
    d = _api_example()
    assert factors(d) == {
        "loop_diuretic": {"hypokalemia", "hypomagnesemia"},
        "caffeine": {"twitching"},
        "stress": {"twitching"},
    }
    assert follow_ups(d) == [
        "check_ionized_calcium",
        "check_mma",
        "clinical_evaluation",
        "urgent_neurology_referral",
    ]
    notes = note_codes(d)
    assert "pseudohypocalcemia" in notes
    assert "age_unknown" not in notes and "loinc_unit_mismatch" not in notes


def test_api_example_every_explanation_names_its_value_and_the_summary_mentions_magnesium():
    d = _api_example()
    for f in d["findings"]:
        assert text(f["value"]) in f["explanation"], f
        assert text(f["reported"]["value"]) in f["explanation"], f
    assert isinstance(d["summary"], str) and d["summary"].strip()
    assert "magnesium" in d["summary"].lower()


# --------------------------------------------------------------------------- further rules


def test_refused_loinc_message_differs_from_an_unknown_code():
    refused = rejected([by_loinc("2593-2", "1", "mmol/L")])["results.0.loinc"]
    unknown = rejected([by_loinc("99999-9", "1", "mmol/L")])["results.0.loinc"]
    assert refused != unknown


def test_explanation_names_a_canonical_value_once_with_limit_and_citation():
    d = run([("potassium", "3.2", "mmol/L")])
    text_ = finding(d, "hypokalemia")["explanation"]
    assert text_.count("3.2 mmol/L") == 1
    assert "3.5" in text_ and "CTCAE" in text_


def test_twitching_counts_as_present_without_sites_or_duration():
    empty = Twitching()
    d = run([("potassium", "3.0", "mmol/L")], twitching=empty, factors=("caffeine",))
    assert finding(d, "hypokalemia")["grade"] == 2
    assert factors(d) == {"caffeine": {"twitching"}}
    assert "persistent_twitching" not in red_flags(d)
    assert "multifocal_twitching" not in red_flags(d)


def test_hemolyzed_critical_hypermagnesemia_stays_critical_and_possibly_spurious():
    d = run([("magnesium", "2.10", "mmol/L")], hemolyzed=True)
    f = finding(d, "hypermagnesemia")
    assert f["critical"] is True and f["possibly_spurious"] is True
    assert d["priority"] == "critical"


def test_b12_decision_bands_apply_from_the_16th_birthday():
    assert codes(run([("vitamin_b12", "120", "pmol/L")], age=16)) == ["b12_deficiency"]


def test_lab_range_judges_a_value_the_ruleset_has_no_interval_for_at_that_age():
    d = run([("albumin", "25", "g/L", ("28", "44"))], birth_date=date(2026, 8, 20))
    assert flag_of(d, "albumin") == "L"
    assert finding(d, "hypoalbuminemia")["reference_range"]["source"] == "lab"


def test_mma_above_a_lab_limit_is_elevated_even_within_the_age_band():
    d = run([("methylmalonic_acid", "0.35", "umol/L", (None, "0.30"))])
    assert codes(d) == ["elevated_mma"]


def test_ionized_hypocalcemia_without_magnesium_vitamin_d_pth_gets_those_checks():
    fu = follow_ups(run([("calcium_ionized", "1.05", "mmol/L")]))
    for code in ("check_magnesium", "check_vitamin_d", "check_pth"):
        assert code in fu
    assert "check_albumin" not in fu and "check_ionized_calcium" not in fu


def test_digoxin_relates_to_hypokalemia_and_hypomagnesemia():
    d = run(
        [("potassium", "3.2", "mmol/L"), ("magnesium", "0.60", "mmol/L")], medications=("digoxin",)
    )
    assert factors(d) == {"digoxin": {"hypokalemia", "hypomagnesemia"}}


@pytest.mark.parametrize(
    ("analyte", "value", "code"),
    [
        pytest.param("magnesium", "0.60", "hypomagnesemia", id="hypomagnesemia"),
        pytest.param("potassium", "3.2", "hypokalemia", id="hypokalemia"),
        pytest.param("calcium", "2.60", "hypercalcemia", id="hypercalcemia"),
        pytest.param("phosphate", "0.70", "hypophosphatemia", id="hypophosphatemia"),
        pytest.param("sodium", "132", "hyponatremia", id="hyponatremia"),
    ],
)
def test_dehydration_relates_to_each_electrolyte_finding(analyte, value, code):
    d = run([(analyte, value, CANONICAL_UNIT[analyte])], factors=("dehydration",))
    assert factors(d) == {"dehydration": {code}}


def test_every_result_of_the_api_example_is_listed():
    d = _api_example()
    assert sorted(r["analyte"] for r in d["results"]) == sorted(
        ["magnesium", "potassium", "calcium", "albumin", "vitamin_d_25oh", "vitamin_b12"]
    )
    assert result_of(d, "calcium")["value"] == D("2.02")
    assert result_of(d, "albumin")["value"] == 32
    assert result_of(d, "vitamin_d_25oh")["value"] == 35
