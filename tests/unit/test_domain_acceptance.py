"""accept_panel: every problem reported at once, keyed by the request-body path; units,
conversion and rounding in decimal arithmetic."""

from __future__ import annotations

import datetime as dt

import pytest

from labinterp.domain import PanelRejected, RawPanel, accept_panel
from tests.builders import (
    COLLECTED,
    NOW,
    R1,
    D,
    accept,
    raw_panel,
    reject,
    res,
)


def only(accepted, analyte):
    return next(r for r in accepted.results if r.analyte == analyte)


# --- conversion and rounding -------------------------------------------------------------


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "canonical"),
    [
        ("magnesium", "1.7", "mg/dL", "0.70"),  # 0.69938, not 0.699
        ("magnesium", "1.7", "mEq/L", "0.85"),
        ("magnesium", "2.07", "mg/dL", "0.85"),
        ("magnesium", "0.7", "mmol/L", "0.70"),  # already canonical: still rounded (scale 2)
        ("potassium", "3.45", "mmol/L", "3.5"),  # half up
        ("potassium", "3.44", "mEq/L", "3.4"),
        ("sodium", "134.5", "mmol/L", "135"),
        ("sodium", "140", "meq/L", "140"),
        ("calcium", "8.1", "mg/dL", "2.02"),  # 2.02095
        ("calcium", "4.3", "mEq/L", "2.15"),
        ("calcium_ionized", "4.6", "mg/dL", "1.15"),  # 1.1477
        ("albumin", "3.2", "g/dL", "32"),
        ("albumin", "3.45", "g/dL", "35"),  # 34.5 -> 35 half up
        ("phosphate", "2.5", "mg/dL", "0.81"),  # 0.80725
        ("vitamin_d_25oh", "20", "ng/mL", "50"),  # 49.92
        ("vitamin_d_25oh", "12", "ng/mL", "30"),  # 29.952
        ("vitamin_b12", "180", "pg/mL", "133"),  # 132.804
        ("vitamin_b12", "350", "ng/L", "258"),  # 258.23
        ("vitamin_b12", "351", "pg/mL", "259"),  # 258.97
        ("methylmalonic_acid", "400", "nmol/L", "0.40"),
        ("methylmalonic_acid", "0.4", "nmol/mL", "0.40"),
        ("homocysteine", "15.04", "umol/L", "15.0"),
        ("folate", "4.0", "ng/mL", "9.1"),  # 9.064
        ("folate", "4.0", "ug/L", "9.1"),
        ("pth", "65", "pg/mL", "6.9"),  # 6.89
        ("pth", "15", "ng/L", "1.6"),  # 1.59
        ("creatinine", "1.0", "mg/dL", "88"),  # 88.4
        ("creatinine", "1.13", "mg/dL", "100"),  # 99.892
    ],
)
def test_conversion_rounds_half_up_to_reporting_precision(analyte, value, unit, canonical):
    r = only(accept(res(analyte, value, unit)), analyte)
    assert r.value == D(canonical) and str(r.value) == canonical


def test_reported_value_and_unit_are_kept_verbatim():
    r = only(accept(res("magnesium", "1.10", "MG/DL")), "magnesium")
    assert str(r.reported_value) == "1.10" and r.reported_unit == "MG/DL"
    assert r.unit == "mmol/L" and r.value == D("0.45")


@pytest.mark.parametrize("unit", ["mmol/l", "MMOL/L", "mmol / L", "mEq/L", "meq/l", "MEQ/L"])
def test_units_match_case_insensitively_and_both_meq_spellings(unit):
    assert only(accept(res("potassium", "4.0", unit)), "potassium").value == D("4.0")


@pytest.mark.parametrize("unit", ["µmol/L", "μmol/L", "umol/L", "UMOL/L", "micromol/L"])
def test_micro_sign_or_u(unit):
    assert only(accept(res("creatinine", "80", unit)), "creatinine").value == D("80")


def test_analyte_by_loinc_and_analyte_key_case_insensitive():
    a = accept(res("2823-3", "4.0", "mmol/L"), res("Magnesium", "0.8", "mmol/L"))
    assert [r.analyte for r in a.results] == ["potassium", "magnesium"]
    assert a.results[0].loinc == "2823-3"


def test_analyte_and_loinc_agreeing_is_accepted():
    r = accept(res("potassium", "4.0", "mmol/L", loinc="2823-3")).results[0]
    assert r.analyte == "potassium" and r.loinc == "2823-3"


def test_context_codes_are_normalised_and_deduplicated():
    a = accept(
        res("potassium", "4.0", "mmol/L"),
        symptoms=("Cramps", "cramps"),
        medications=("LOOP_DIURETIC",),
    )
    assert a.context.symptoms == ("cramps",) and a.context.medications == ("loop_diuretic",)


# --- rejections --------------------------------------------------------------------------


def test_unit_not_valid_names_the_allowed_units():
    errors = reject(res("magnesium", "0.8", "mmol/L"), res("potassium", "4", "mg/dL"))
    assert errors == {
        "results.1.unit": ["unit 'mg/dL' is not valid for potassium; use mmol/L or mEq/L"]
    }


def test_unit_missing():
    errors = reject(res("magnesium", "0.8", None))
    assert errors["results.0.unit"] == ["unit is required; use mmol/L, mg/dL or mEq/L"]


def test_unknown_analyte_lists_the_known_ones():
    msg = reject(res("zinc", "1", "mmol/L"))["results.0.analyte"][0]
    assert msg.startswith("unknown analyte 'zinc'; known: magnesium, potassium, sodium, calcium")


def test_unknown_loinc():
    msg = reject(res("9999-9", "1", "mmol/L"))["results.0.loinc"][0]
    assert msg.startswith("unknown LOINC code '9999-9'")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("2593-2", "erythrocyte magnesium"),
        ("16695-9", "whole-blood vitamin B12"),
        ("35365-6", "vitamin D and metabolites"),
        ("49054-0", "25-OH vitamin D2 alone"),
        ("46269-7", "25-OH vitamin D2 alone"),
    ],
)
def test_refused_loinc_says_why(code, reason):
    msg = reject(res(code, "1", "mmol/L"))["results.0.loinc"][0]
    assert msg.startswith(f"LOINC {code} is {reason}")
    assert msg.endswith("not a serum result of a supported analyte")


def test_erythrocyte_magnesium_message_exactly():
    assert reject(
        res("magnesium", "0.8", "mmol/L"),
        res("potassium", "4", "mmol/L"),
        res("2593-2", "2", "mmol/L"),
    )["results.2.loinc"] == [
        "LOINC 2593-2 is erythrocyte magnesium, not a serum result of a supported analyte"
    ]


def test_analyte_and_loinc_disagreeing_is_rejected_on_loinc():
    errors = reject(res("magnesium", "0.8", "mmol/L", loinc="2823-3"))
    assert errors == {"results.0.loinc": ["LOINC 2823-3 is potassium, not magnesium"]}


def test_neither_analyte_nor_loinc():
    assert reject(res(None, "1", "mmol/L"))["results.0.analyte"] == ["analyte or loinc is required"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "value is required"),
        ("0", "value must be greater than zero"),
        ("-1", "value must be greater than zero"),
    ],
)
def test_value_missing_zero_or_negative(value, message):
    assert reject(res("potassium", value, "mmol/L"))["results.0.value"] == [message]


def test_physiologically_impossible_value():
    assert reject(res("magnesium", "25", "mmol/L"))["results.0.value"] == [
        "magnesium 25 mmol/L is outside the physiologically possible range 0.05–10 mmol/L"
    ]


def test_impossible_value_in_another_unit_shows_both_units():
    msg = reject(res("magnesium", "30", "mg/dL"))["results.0.value"][0]
    assert msg == (
        "magnesium 30 mg/dL (12.34 mmol/L) is outside the physiologically possible "
        "range 0.05–10 mmol/L"
    )


@pytest.mark.parametrize("value", ["1E+308", "1E+30", "123456789012345678901234567890"])
def test_astronomically_large_value_is_refused_not_crashed_on(value):
    # too large to round to reporting precision at all: refused as impossible, like 25 mmol/L
    msg = reject(res("magnesium", value, "mg/dL"))["results.0.value"][0]
    assert msg.startswith("magnesium ") and "physiologically possible range 0.05–10" in msg


@pytest.mark.parametrize(
    ("analyte", "low", "high", "unit"),
    [
        ("magnesium", "0.05", "10", "mmol/L"),
        ("potassium", "0.5", "15", "mmol/L"),
        ("sodium", "80", "220", "mmol/L"),
        ("calcium", "0.2", "7", "mmol/L"),
        ("calcium_ionized", "0.1", "4", "mmol/L"),
        ("albumin", "1", "90", "g/L"),
        ("phosphate", "0.05", "10", "mmol/L"),
        ("vitamin_d_25oh", "1", "1500", "nmol/L"),
        ("vitamin_b12", "1", "20000", "pmol/L"),
        ("methylmalonic_acid", "0.01", "5000", "umol/L"),
        ("homocysteine", "0.5", "500", "umol/L"),
        ("folate", "0.5", "500", "nmol/L"),
        ("pth", "0.05", "1000", "pmol/L"),
        ("creatinine", "5", "5000", "umol/L"),
    ],
)
def test_accepted_range_limits_are_inclusive(analyte, low, high, unit):
    accept(res(analyte, low, unit))
    accept(res(analyte, high, unit))
    step = D(1).scaleb(D(low).as_tuple().exponent if "." in low else 0)
    below = D(low) - (step if "." in low else D("0.1") if D(low) > 1 else D("0.01"))
    assert "results.0.value" in reject(res(analyte, str(below), unit))
    assert "results.0.value" in reject(res(analyte, str(D(high) + 1), unit))


def test_lab_range_low_above_high():
    errors = reject(res("potassium", "4", "mmol/L", low="5", high="3"))
    assert errors == {"results.0.reference_range": ["low (5) is greater than high (3)"]}


def test_one_sided_lab_ranges_are_allowed():
    a = accept(
        res("methylmalonic_acid", "0.3", "umol/L", high="0.4"),
        res("vitamin_d_25oh", "80", "nmol/L", low="75"),
    )
    assert a.results[0].reference_range.high == D("0.4")


def test_duplicate_analyte_names_the_first():
    errors = reject(
        res("magnesium", "0.8", "mmol/L"),
        res("potassium", "4", "mmol/L"),
        res("sodium", "140", "mmol/L"),
        res("6298-4", "4.1", "mmol/L"),
    )
    assert errors == {"results.3.analyte": ["duplicate analyte potassium (also results.1)"]}


def test_total_and_corrected_calcium_are_the_same_analyte():
    errors = reject(res("calcium", "2.3", "mmol/L"), res("29265-6", "2.3", "mmol/L"))
    assert errors == {"results.1.analyte": ["duplicate analyte calcium (also results.0)"]}


def test_no_results():
    with pytest.raises(PanelRejected) as info:
        accept_panel(RawPanel(collected_at=COLLECTED, results=()), R1, NOW)
    assert info.value.errors == {"results": ["at least one result is required"]}


def test_collected_more_than_5_minutes_in_the_future():
    ok = NOW + dt.timedelta(minutes=5)
    accept(res("potassium", "4", "mmol/L"), collected_at=ok)
    errors = reject(res("potassium", "4", "mmol/L"), collected_at=ok + dt.timedelta(seconds=1))
    assert errors == {"collected_at": ["collected_at is more than 5 minutes in the future"]}


def test_collected_before_birth():
    errors = reject(res("potassium", "4", "mmol/L"), birth_date=dt.date(2026, 11, 21))
    assert errors["collected_at"] == ["collected_at is before the birth date"]


def test_collected_on_the_day_of_birth_is_fine():
    accept(res("potassium", "4", "mmol/L"), birth_date=dt.date(2026, 11, 20))


def test_naive_collection_time_is_utc():
    a = accept_panel(
        raw_panel(res("potassium", "4", "mmol/L"), collected_at=dt.datetime(2026, 11, 20, 8, 30)),
        R1,
        NOW,
    )
    assert a.collected_at.tzinfo is not None


def test_unknown_context_codes_name_the_allowed_ones():
    errors = reject(
        res("potassium", "4", "mmol/L"),
        symptoms=("cramps", "headache"),
        factors=("sunburn",),
        medications=("aspirin",),
    )
    assert errors["context.symptoms.1"][0].startswith(
        "unknown symptom 'headache'; allowed: muscle_weakness, muscle_wasting"
    )
    assert errors["context.factors.0"][0].startswith("unknown factor 'sunburn'; allowed: caffeine")
    assert errors["context.medications.0"][0].startswith(
        "unknown medication 'aspirin'; allowed: loop_diuretic"
    )


def test_all_problems_are_reported_at_once():
    errors = reject(
        res("zinc", "1", "mmol/L"),
        res("potassium", "0", "mg/dL"),
        res("magnesium", "0.8", "mmol/L", low="2", high="1"),
        collected_at=NOW + dt.timedelta(hours=1),
        symptoms=("headache",),
    )
    assert set(errors) == {
        "results.0.analyte",
        "results.1.value",
        "results.1.unit",
        "results.2.reference_range",
        "collected_at",
        "context.symptoms.0",
    }


def test_loinc_dimension_contradicting_the_unit_is_converted_by_its_unit():
    r = accept(res("19123-9", "0.80", "mmol/L")).results[0]
    assert r.loinc_unit_mismatch is True and r.value == D("0.80")
    mass = accept(res("19123-9", "1.7", "mg/dL")).results[0]
    assert mass.loinc_unit_mismatch is False and mass.value == D("0.70")
    molar_code_mass_unit = accept(res("2601-3", "1.7", "mg/dL")).results[0]
    assert molar_code_mass_unit.loinc_unit_mismatch is True


def test_mEq_is_a_molar_unit_for_a_molar_code():
    assert accept(res("2601-3", "1.7", "mEq/L")).results[0].loinc_unit_mismatch is False
