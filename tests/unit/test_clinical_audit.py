"""Rules of shared/CLINICAL.md that the other unit tests left unprotected (audit of 2026).

Every expected number was computed by hand or with a small Decimal script from CLINICAL.md,
never read off the engine; the working is in the comments and test ids.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.builders import (
    COLLECTED,
    R1,
    R2,
    TWITCHING,
    D,
    finding_of,
    reject,
    res,
    result_of,
    run,
)

COLLECTED_DAY = COLLECTED.date()  # the builders' collection day


def birthday(years: int, day_before: bool = False) -> dt.date:
    """The birth date that makes the patient ``years`` old on the collection day (or one day
    short of it)."""
    born = COLLECTED_DAY.replace(year=COLLECTED_DAY.year - years)
    return born + dt.timedelta(days=1) if day_before else born


# --- accepted ranges, in the units they are converted from -------------------------------
# Physiological possibility is judged on the exact conversion (the documented choice), so a
# value whose rounding would land on the limit is still refused.


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "canonical"),
    [
        pytest.param(
            "magnesium", "0.13", "mg/dL", "0.05", id="Mg 0.13 mg/dL = 0.053482 accepted -> 0.05"
        ),
        pytest.param(
            "magnesium", "0.12", "mg/dL", None, id="Mg 0.12 mg/dL = 0.049368 < 0.05 refused"
        ),
        pytest.param(
            "magnesium", "24.30", "mg/dL", "10.00", id="Mg 24.30 mg/dL = 9.99702 accepted -> 10.00"
        ),
        pytest.param("magnesium", "0.10", "mEq/L", "0.05", id="Mg 0.10 mEq/L = 0.050 accepted"),
        pytest.param(
            "magnesium",
            "0.09",
            "mEq/L",
            None,
            id="Mg 0.09 mEq/L = 0.045 refused though it rounds half up to 0.05",
        ),
        pytest.param("magnesium", "20", "mEq/L", "10.00", id="Mg 20 mEq/L = 10 accepted"),
        pytest.param("magnesium", "20.01", "mEq/L", None, id="Mg 20.01 mEq/L = 10.005 refused"),
        pytest.param("potassium", "0.5", "mEq/L", "0.5", id="K 0.5 mEq/L accepted"),
        pytest.param(
            "potassium", "0.49", "mEq/L", None, id="K 0.49 mEq/L refused though it rounds to 0.5"
        ),
        pytest.param("potassium", "15", "mEq/L", "15.0", id="K 15 mEq/L accepted"),
        pytest.param(
            "potassium", "15.01", "mEq/L", None, id="K 15.01 mEq/L refused though it rounds to 15.0"
        ),
        pytest.param("sodium", "80", "mEq/L", "80", id="Na 80 mEq/L accepted"),
        pytest.param(
            "sodium", "79.9", "mEq/L", None, id="Na 79.9 mEq/L refused though it rounds to 80"
        ),
        pytest.param("sodium", "220", "mEq/L", "220", id="Na 220 mEq/L accepted"),
        pytest.param("sodium", "220.1", "mEq/L", None, id="Na 220.1 mEq/L refused"),
        pytest.param("calcium", "0.81", "mg/dL", "0.20", id="Ca 0.81 mg/dL = 0.202095 accepted"),
        pytest.param("calcium", "0.80", "mg/dL", None, id="Ca 0.80 mg/dL = 0.1996 refused"),
        pytest.param(
            "calcium", "28.05", "mg/dL", "7.00", id="Ca 28.05 mg/dL = 6.998475 accepted -> 7.00"
        ),
        pytest.param("calcium", "28.06", "mg/dL", None, id="Ca 28.06 mg/dL = 7.00097 refused"),
        pytest.param("calcium", "0.4", "mEq/L", "0.20", id="Ca 0.4 mEq/L = 0.20 accepted"),
        pytest.param("calcium", "0.39", "mEq/L", None, id="Ca 0.39 mEq/L = 0.195 refused"),
        pytest.param("calcium", "14", "mEq/L", "7.00", id="Ca 14 mEq/L = 7 accepted"),
        pytest.param("calcium", "14.01", "mEq/L", None, id="Ca 14.01 mEq/L = 7.005 refused"),
        pytest.param(
            "calcium_ionized", "0.41", "mg/dL", "0.10", id="iCa 0.41 mg/dL = 0.102295 accepted"
        ),
        pytest.param(
            "calcium_ionized", "0.40", "mg/dL", None, id="iCa 0.40 mg/dL = 0.0998 refused"
        ),
        pytest.param(
            "calcium_ionized", "16.03", "mg/dL", "4.00", id="iCa 16.03 mg/dL = 3.999485 accepted"
        ),
        pytest.param(
            "calcium_ionized", "16.04", "mg/dL", None, id="iCa 16.04 mg/dL = 4.00198 refused"
        ),
        pytest.param("albumin", "0.1", "g/dL", "1", id="albumin 0.1 g/dL = 1 g/L accepted"),
        pytest.param("albumin", "0.09", "g/dL", None, id="albumin 0.09 g/dL = 0.9 g/L refused"),
        pytest.param("albumin", "9.0", "g/dL", "90", id="albumin 9.0 g/dL = 90 g/L accepted"),
        pytest.param("albumin", "9.01", "g/dL", None, id="albumin 9.01 g/dL = 90.1 g/L refused"),
        pytest.param(
            "phosphate", "0.16", "mg/dL", "0.05", id="phosphate 0.16 mg/dL = 0.051664 accepted"
        ),
        pytest.param(
            "phosphate", "0.15", "mg/dL", None, id="phosphate 0.15 mg/dL = 0.048435 refused"
        ),
        pytest.param(
            "phosphate", "30.96", "mg/dL", "10.00", id="phosphate 30.96 mg/dL = 9.996984 accepted"
        ),
        pytest.param(
            "phosphate", "30.97", "mg/dL", None, id="phosphate 30.97 mg/dL = 10.000213 refused"
        ),
        pytest.param(
            "vitamin_d_25oh", "0.41", "ng/mL", "1", id="vitD 0.41 ng/mL = 1.02336 accepted -> 1"
        ),
        pytest.param("vitamin_d_25oh", "0.4", "ng/mL", None, id="vitD 0.4 ng/mL = 0.9984 refused"),
        pytest.param(
            "vitamin_d_25oh",
            "600.9",
            "ng/mL",
            "1500",
            id="vitD 600.9 ng/mL = 1499.8464 accepted -> 1500",
        ),
        pytest.param(
            "vitamin_d_25oh", "601", "ng/mL", None, id="vitD 601 ng/mL = 1500.096 refused"
        ),
        pytest.param("vitamin_b12", "1.36", "pg/mL", "1", id="B12 1.36 pg/mL = 1.003408 accepted"),
        pytest.param("vitamin_b12", "1.35", "pg/mL", None, id="B12 1.35 pg/mL = 0.99603 refused"),
        pytest.param(
            "vitamin_b12",
            "27107",
            "ng/L",
            "20000",
            id="B12 27107 ng/L = 19999.5446 accepted -> 20000",
        ),
        pytest.param(
            "vitamin_b12", "27108", "ng/L", None, id="B12 27108 ng/L = 20000.2824 refused"
        ),
        pytest.param(
            "methylmalonic_acid", "10", "nmol/L", "0.01", id="MMA 10 nmol/L = 0.010 accepted"
        ),
        pytest.param(
            "methylmalonic_acid", "9.99", "nmol/L", None, id="MMA 9.99 nmol/L = 0.00999 refused"
        ),
        pytest.param(
            "methylmalonic_acid",
            "5000000",
            "nmol/L",
            "5000.00",
            id="MMA 5000000 nmol/L = 5000 accepted",
        ),
        pytest.param(
            "methylmalonic_acid",
            "5000001",
            "nmol/L",
            None,
            id="MMA 5000001 nmol/L = 5000.001 refused",
        ),
        pytest.param(
            "methylmalonic_acid", "5000", "nmol/mL", "5000.00", id="MMA 5000 nmol/mL accepted"
        ),
        pytest.param(
            "methylmalonic_acid", "5000.01", "nmol/mL", None, id="MMA 5000.01 nmol/mL refused"
        ),
        pytest.param("folate", "0.23", "ng/mL", "0.5", id="folate 0.23 ng/mL = 0.52118 accepted"),
        pytest.param("folate", "0.22", "ug/L", None, id="folate 0.22 ug/L = 0.49852 refused"),
        pytest.param(
            "folate", "220.6", "ug/L", "499.9", id="folate 220.6 ug/L = 499.8796 accepted"
        ),
        pytest.param("folate", "220.7", "ng/mL", None, id="folate 220.7 ng/mL = 500.1062 refused"),
        pytest.param("pth", "0.48", "pg/mL", "0.1", id="PTH 0.48 pg/mL = 0.05088 accepted -> 0.1"),
        pytest.param("pth", "0.47", "ng/L", None, id="PTH 0.47 ng/L = 0.04982 refused"),
        pytest.param("pth", "9433", "ng/L", "999.9", id="PTH 9433 ng/L = 999.898 accepted"),
        pytest.param("pth", "9434", "pg/mL", None, id="PTH 9434 pg/mL = 1000.004 refused"),
        pytest.param(
            "creatinine", "0.06", "mg/dL", "5", id="creatinine 0.06 mg/dL = 5.304 accepted"
        ),
        pytest.param(
            "creatinine", "0.05", "mg/dL", None, id="creatinine 0.05 mg/dL = 4.42 refused"
        ),
        pytest.param(
            "creatinine", "56.56", "mg/dL", "5000", id="creatinine 56.56 mg/dL = 4999.904 accepted"
        ),
        pytest.param(
            "creatinine", "56.57", "mg/dL", None, id="creatinine 56.57 mg/dL = 5000.788 refused"
        ),
    ],
)
def test_accepted_range_limits_hold_for_converted_values_judged_on_the_exact_conversion(
    analyte, value, unit, canonical
):
    if canonical is None:
        assert "results.0.value" in reject(res(analyte, value, unit))
        return
    r = result_of(run(res(analyte, value, unit)), analyte)
    assert r["value"] == D(canonical)
    assert r["reported"] == {"value": D(value), "unit": unit}


# --- LOINC -> analyte ---------------------------------------------------------------------

LOINC_TABLE = [
    # (code, analyte, a unit of the code's own dimension, a unit of the other one or None)
    ("19123-9", "magnesium", "mg/dL", "mmol/L"),
    ("2601-3", "magnesium", "mmol/L", "mg/dL"),
    ("2823-3", "potassium", "mmol/L", None),
    ("6298-4", "potassium", "mEq/L", None),
    ("2951-2", "sodium", "mmol/L", None),
    ("17861-6", "calcium", "mg/dL", "mmol/L"),
    ("2000-8", "calcium", "mmol/L", "mg/dL"),
    ("29265-6", "calcium", "mmol/L", "mg/dL"),
    ("1994-3", "calcium_ionized", "mmol/L", "mg/dL"),
    ("1995-0", "calcium_ionized", "mmol/L", "mg/dL"),
    ("12180-6", "calcium_ionized", "mmol/L", "mg/dL"),
    ("17864-0", "calcium_ionized", "mg/dL", "mmol/L"),
    ("1751-7", "albumin", "g/dL", None),
    ("61151-7", "albumin", "g/L", None),
    ("2777-1", "phosphate", "mg/dL", "mmol/L"),
    ("14879-1", "phosphate", "mmol/L", "mg/dL"),
    ("62292-8", "vitamin_d_25oh", "ng/mL", "nmol/L"),
    ("1989-3", "vitamin_d_25oh", "ng/mL", "nmol/L"),
    ("14635-7", "vitamin_d_25oh", "nmol/L", "ng/mL"),
    ("2132-9", "vitamin_b12", "pg/mL", "pmol/L"),
    ("14685-2", "vitamin_b12", "pmol/L", "ng/L"),
    ("13964-2", "methylmalonic_acid", "nmol/L", None),
    ("13965-9", "homocysteine", "umol/L", None),
    ("2284-8", "folate", "ng/mL", "nmol/L"),
    ("14732-2", "folate", "nmol/L", "ug/L"),
    ("2731-8", "pth", "pg/mL", "pmol/L"),
    ("14866-8", "pth", "pmol/L", "ng/L"),
    ("2160-0", "creatinine", "mg/dL", "umol/L"),
    ("14682-9", "creatinine", "umol/L", "mg/dL"),
]
VALUE_IN = {  # a plausible value in each unit
    "mmol/L": "2.0",
    "mEq/L": "4.0",
    "mg/dL": "2.0",
    "g/dL": "4.0",
    "g/L": "40",
    "ng/mL": "30",
    "nmol/L": "80",
    "pg/mL": "400",
    "pmol/L": "300",
    "ng/L": "400",
    "umol/L": "10",
    "ug/L": "10",
}


def value_for(analyte: str, unit: str) -> str:
    return "140" if analyte == "sodium" else VALUE_IN[unit]


@pytest.mark.parametrize(
    ("code", "analyte", "unit"),
    [pytest.param(c, a, u, id=f"LOINC {c} is {a} ({u})") for c, a, u, _ in LOINC_TABLE],
)
def test_every_accepted_loinc_names_its_analyte_without_a_mismatch_note(code, analyte, unit):
    i = run(res(code, value_for(analyte, unit), unit))
    r = result_of(i, analyte)
    assert r["loinc"] == code
    assert "loinc_unit_mismatch" not in i.note_codes


@pytest.mark.parametrize(
    ("code", "analyte", "unit"),
    [
        pytest.param(c, a, other, id=f"LOINC {c} sent in {other}")
        for c, a, _, other in LOINC_TABLE
        if other is not None
    ],
)
def test_loinc_whose_dimension_contradicts_the_unit_is_converted_by_the_unit_with_a_note(
    code, analyte, unit
):
    value = value_for(analyte, unit)
    i = run(res(code, value, unit))
    factor = R1.analytes[analyte].units[unit.casefold()].factor
    precision = R1.analytes[analyte].precision
    expected = (D(value) * factor).quantize(D(1).scaleb(-precision), rounding="ROUND_HALF_UP")
    assert result_of(i, analyte)["value"] == expected
    notes = [n for n in i.notes if n.code == "loinc_unit_mismatch"]
    assert len(notes) == 1 and notes[0].analyte == analyte
    assert analyte in notes[0].detail and code in notes[0].detail


# --- age bands on the day before and on the day of a birthday ----------------------------


@pytest.mark.parametrize(
    ("analyte", "value", "years", "before", "after"),
    [
        pytest.param(
            "calcium",
            "2.20",
            1,
            ("N", "2.17"),
            ("L", "2.32"),
            id="Ca 2.20: < 1 y 2.17-2.74, from the 1st birthday 2.32-2.64",
        ),
        pytest.param(
            "calcium",
            "2.70",
            1,
            ("N", "2.17"),
            ("H", "2.32"),
            id="Ca 2.70: normal < 1 y, high from the 1st birthday",
        ),
        pytest.param(
            "albumin",
            "40",
            1,
            ("IND", None),
            ("N", "35"),
            id="albumin: no interval < 1 y, 35-50 from the 1st birthday",
        ),
        pytest.param(
            "phosphate",
            "1.50",
            1,
            ("IND", None),
            ("N", "1.39"),
            id="phosphate: no interval < 1 y, female 1.39-1.74 from 1 y",
        ),
        pytest.param(
            "vitamin_b12",
            "120",
            16,
            ("IND", None),
            ("L", "259"),
            id="B12: no decision band < 16 y, NICE bands from the 16th birthday",
        ),
        pytest.param(
            "calcium",
            "2.20",
            18,
            ("L", "2.32"),
            ("N", "2.15"),
            id="Ca 2.20: 1-17 y 2.32-2.64, from the 18th birthday 2.15-2.50",
        ),
        pytest.param(
            "calcium_ionized",
            "1.20",
            18,
            ("L", "1.22"),
            ("N", "1.15"),
            id="iCa 1.20: < 18 y 1.22-1.37, from the 18th birthday 1.15-1.33",
        ),
        pytest.param(
            "methylmalonic_acid",
            "0.30",
            18,
            ("IND", None),
            ("N", None),
            id="MMA: no limit < 18 y, <= 0.40 from the 18th birthday",
        ),
        pytest.param(
            "homocysteine",
            "10",
            18,
            ("IND", None),
            ("N", None),
            id="homocysteine: no limit < 18 y, <= 15 from the 18th birthday",
        ),
        pytest.param(
            "folate",
            "20",
            18,
            ("IND", None),
            ("N", "9.1"),
            id="folate: no limit < 18 y, >= 9.1 from the 18th birthday",
        ),
        pytest.param(
            "pth",
            "3.0",
            18,
            ("IND", None),
            ("N", "1.6"),
            id="PTH: no interval < 18 y, 1.6-6.9 from the 18th birthday",
        ),
        pytest.param(
            "phosphate",
            "1.32",
            8,
            ("L", "1.39"),
            ("N", "1.29"),
            id="female phosphate 1.32: 1-7 y 1.39-1.74, from the 8th birthday 1.29-1.68",
        ),
        pytest.param(
            "phosphate",
            "1.65",
            14,
            ("N", "1.29"),
            ("H", "1.13"),
            id="female phosphate 1.65: 8-13 y up to 1.68, from the 14th birthday up to 1.58",
        ),
        pytest.param(
            "phosphate",
            "1.55",
            16,
            ("N", "1.13"),
            ("H", "1.00"),
            id="female phosphate 1.55: 14-15 y up to 1.58, from the 16th birthday up to 1.52",
        ),
        pytest.param(
            "phosphate",
            "0.90",
            18,
            ("L", "1.00"),
            ("N", "0.81"),
            id="phosphate 0.90: 16-17 y 1.00-1.52, from the 18th birthday 0.81-1.45",
        ),
    ],
)
def test_age_band_changes_on_the_birthday_not_the_day_before(analyte, value, years, before, after):
    unit = R1.analytes[analyte].canonical_unit
    for day_before, (code, low) in ((True, before), (False, after)):
        i = run(res(analyte, value, unit), sex="female", birth_date=birthday(years, day_before))
        r = result_of(i, analyte)
        assert r["interpretation"] == code, (day_before, r)
        if low is not None:
            assert r["reference_range"]["low"] == D(low)


def test_male_phosphate_band_changes_on_the_5th_birthday():
    # male 1-4 y 1.39-1.74; 5-13 y 1.19-1.74
    before = run(res("phosphate", "1.25", "mmol/L"), sex="male", birth_date=birthday(5, True))
    on = run(res("phosphate", "1.25", "mmol/L"), sex="male", birth_date=birthday(5))
    assert before.finding_codes == ("hypophosphatemia",)
    assert on.finding_codes == () and result_of(on, "phosphate")["interpretation"] == "N"


def test_2026_2_adult_magnesium_0_85_applies_from_the_18th_birthday_not_the_day_before():
    # 7 d-18 y 0.65-1.10 unchanged; >= 18 y 0.85-1.10 in 2026.2
    before = run(res("magnesium", "0.84", "mmol/L"), ruleset=R2, birth_date=birthday(18, True))
    on = run(res("magnesium", "0.84", "mmol/L"), ruleset=R2, birth_date=birthday(18))
    assert result_of(before, "magnesium")["interpretation"] == "N"
    assert result_of(before, "magnesium")["reference_range"]["low"] == D("0.65")
    assert finding_of(on, "hypomagnesemia")["reference_range"]["low"] == D("0.85")


def test_2026_2_newborn_magnesium_band_is_unchanged_0_60_to_1_00():
    born = COLLECTED_DAY - dt.timedelta(days=6)
    for value, code in (("0.60", "N"), ("0.59", "L"), ("1.00", "N"), ("1.01", "H")):
        for ruleset in (R1, R2):
            i = run(res("magnesium", value, "mmol/L"), ruleset=ruleset, birth_date=born)
            assert result_of(i, "magnesium")["interpretation"] == code, (value, ruleset.version)


def test_potassium_critical_low_2_8_applies_to_a_newborn_too():
    born = COLLECTED_DAY - dt.timedelta(days=3)  # 0-7 d: 3.2-5.7, critical < 2.8
    at_limit = run(res("potassium", "2.8", "mmol/L"), birth_date=born)
    assert result_of(at_limit, "potassium")["interpretation"] == "L"
    assert finding_of(at_limit, "hypokalemia")["critical"] is False
    below = run(res("potassium", "2.7", "mmol/L"), birth_date=born)
    assert result_of(below, "potassium")["interpretation"] == "LL"
    assert below.priority == "critical"


def test_without_any_age_the_adult_potassium_critical_limit_6_2_applies():
    i = run(res("potassium", "6.3", "mmol/L"), birth_date=None)
    assert result_of(i, "potassium")["interpretation"] == "HH"
    assert i.priority == "critical" and "age_unknown" in i.note_codes


# --- laboratory ranges -------------------------------------------------------------------


def test_a_value_equal_to_the_lab_high_is_normal_and_just_above_it_high():
    assert (
        result_of(run(res("potassium", "5.0", "mmol/L", "3.4", "5.0")), "potassium")[
            "interpretation"
        ]
        == "N"
    )
    i = run(res("potassium", "5.01", "mmol/L", "3.4", "5.0"))  # 5.01 as reported > 5.0
    assert result_of(i, "potassium")["interpretation"] == "H"
    assert finding_of(i, "hyperkalemia")["value"] == D("5.0")  # canonical, rounded


def test_mma_lab_limit_alone_judges_a_17_year_old_normal_not_indeterminate():
    # "<= 0.40 umol/L" is a complete MMA range; below MMA there is no finding to miss
    i = run(res("methylmalonic_acid", "0.20", "umol/L", high="0.40"), birth_date=birthday(17))
    assert result_of(i, "methylmalonic_acid")["interpretation"] == "N"
    assert i.status == "normal" and i.notes == ()


def test_b12_borderline_at_17_with_mma_within_the_lab_limit_is_deficiency_unlikely():
    # B12 200 pmol/L in 133-258 (NICE, from 16 y); MMA 0.20 within the laboratory's 0.40
    i = run(
        res("vitamin_b12", "200", "pmol/L"),
        res("methylmalonic_acid", "0.20", "umol/L", high="0.40"),
        birth_date=birthday(17),
    )
    assert i.findings == ()
    assert "b12_deficiency_unlikely" in i.note_codes
    assert "check_mma" not in i.follow_up_codes


def test_b12_borderline_at_17_with_mma_above_the_lab_limit_is_deficiency():
    i = run(
        res("vitamin_b12", "200", "pmol/L"),
        res("methylmalonic_acid", "0.50", "umol/L", high="0.40"),
        birth_date=birthday(17),
    )
    assert set(i.finding_codes) == {"b12_deficiency", "elevated_mma"}


@pytest.mark.parametrize(
    ("analyte", "value", "low", "high", "years"),
    [
        pytest.param(
            "folate", "20", "9.1", None, 10, id="folate >= 9.1 at 10 y: above folate is no finding"
        ),
        pytest.param(
            "vitamin_b12", "300", "200", None, 10, id="B12 >= 200 at 10 y: above B12 is no finding"
        ),
        pytest.param(
            "homocysteine",
            "8",
            None,
            "15",
            10,
            id="homocysteine <= 15 at 10 y: below it is no finding",
        ),
    ],
)
def test_one_sided_lab_range_is_complete_where_the_open_side_has_no_finding(
    analyte, value, low, high, years
):
    unit = R1.analytes[analyte].canonical_unit
    i = run(res(analyte, value, unit, low, high), birth_date=birthday(years))
    assert result_of(i, analyte)["interpretation"] == "N"
    assert i.status == "normal"


def test_creatinine_with_only_a_lab_high_stays_indeterminate_on_its_open_low_side():
    # creatinine_low is a finding and the ruleset has no creatinine interval: IND, never normal
    i = run(res("creatinine", "80", "umol/L", high="110"))
    assert result_of(i, "creatinine")["interpretation"] == "IND"
    assert "lab_range_open_side_unjudged" in i.note_codes
    assert run(res("creatinine", "120", "umol/L", high="110")).finding_codes == ("creatinine_high",)


# --- albumin-corrected calcium: CTCAE edges judged on the corrected value -----------------


@pytest.mark.parametrize(
    ("measured", "albumin", "code", "grade", "critical"),
    [
        pytest.param(
            "1.95",
            "30",
            None,
            None,
            False,
            id="1.95 + 0.02 x 10 = 2.15: normal (pseudohypocalcemia)",
        ),
        pytest.param("1.94", "30", "hypocalcemia", 1, False, id="1.94 + 0.20 = 2.14: grade 1"),
        pytest.param("1.80", "30", "hypocalcemia", 1, False, id="1.80 + 0.20 = 2.00: grade 1"),
        pytest.param("1.79", "30", "hypocalcemia", 2, False, id="1.79 + 0.20 = 1.99: grade 2"),
        pytest.param(
            "1.65",
            "35",
            "hypocalcemia",
            2,
            False,
            id="1.65 + 0.02 x 5 = 1.75: grade 2, measured not below 1.65",
        ),
        pytest.param("1.66", "36", "hypocalcemia", 3, False, id="1.66 + 0.02 x 4 = 1.74: grade 3"),
        pytest.param(
            "1.30",
            "30",
            "hypocalcemia",
            3,
            True,
            id="1.30 + 0.20 = 1.50: grade 3, measured 1.30 critical",
        ),
        pytest.param(
            "1.29",
            "30",
            "hypocalcemia",
            4,
            True,
            id="1.29 + 0.20 = 1.49: grade 4, measured critical",
        ),
        pytest.param("2.30", "30", None, None, False, id="2.30 + 0.20 = 2.50: normal"),
        pytest.param(
            "2.31",
            "30",
            "hypercalcemia",
            1,
            False,
            id="2.31 + 0.20 = 2.51: grade 1 although measured is normal",
        ),
        pytest.param("2.70", "30", "hypercalcemia", 1, False, id="2.70 + 0.20 = 2.90: grade 1"),
        pytest.param("2.71", "30", "hypercalcemia", 2, False, id="2.71 + 0.20 = 2.91: grade 2"),
        pytest.param("2.90", "30", "hypercalcemia", 2, False, id="2.90 + 0.20 = 3.10: grade 2"),
        pytest.param("2.91", "30", "hypercalcemia", 3, False, id="2.91 + 0.20 = 3.11: grade 3"),
        pytest.param(
            "3.20",
            "30",
            "hypercalcemia",
            3,
            False,
            id="3.20 + 0.20 = 3.40: grade 3, measured not above 3.22",
        ),
        pytest.param("3.21", "30", "hypercalcemia", 4, False, id="3.21 + 0.20 = 3.41: grade 4"),
    ],
)
def test_corrected_calcium_grade_band_edges(measured, albumin, code, grade, critical):
    i = run(res("calcium", measured, "mmol/L"), res("albumin", albumin, "g/L"))
    calcium = [f for f in i.findings if f.analyte == "calcium"]
    if code is None:
        assert calcium == []
        return
    assert [f.code for f in calcium] == [code]
    f = calcium[0]
    assert f.grade == grade and f.measured == D(measured)
    assert f.is_critical is critical


# --- follow-ups: the full order ----------------------------------------------------------


def test_follow_up_order_check_calcium_pth_b12_repeat_potassium_renal_function_then_referrals():
    i = run(
        res("potassium", "3.2", "mmol/L"),  # hypokalemia, Mg not measured
        res("vitamin_d_25oh", "20", "nmol/L"),  # deficiency, no calcium or PTH
        res("methylmalonic_acid", "0.50", "umol/L"),  # elevated, no creatinine
        hemolyzed=True,
        twitching=TWITCHING,
        symptoms=("tingling", "muscle_wasting"),  # sensory (no B12) and urgent
    )
    assert i.follow_up_codes == (
        "check_magnesium",
        "check_calcium",
        "check_pth",
        "check_b12",
        "repeat_potassium",
        "check_renal_function",
        "clinical_evaluation",
        "urgent_neurology_referral",
    )


def test_follow_up_order_check_magnesium_pth_vitamin_d_then_mma():
    i = run(res("calcium_ionized", "1.05", "mmol/L"), res("vitamin_b12", "200", "pmol/L"))
    assert i.follow_up_codes == ("check_magnesium", "check_pth", "check_vitamin_d", "check_mma")


def test_follow_up_order_check_ionized_calcium_before_check_mma():
    # 2.00 + 0.02 x (40 - 30) = 2.20: pseudohypocalcemia, ionized not measured
    i = run(
        res("potassium", "3.2", "mmol/L"),
        res("calcium", "2.00", "mmol/L"),
        res("albumin", "30", "g/L"),
        res("vitamin_b12", "200", "pmol/L"),
    )
    assert i.follow_up_codes == ("check_magnesium", "check_ionized_calcium", "check_mma")


# --- contributing factors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("results", "code"),
    [
        pytest.param([("magnesium", "1.20", "mmol/L")], "hypermagnesemia", id="hypermagnesemia"),
        pytest.param([("potassium", "5.8", "mmol/L")], "hyperkalemia", id="hyperkalemia"),
        pytest.param(
            [("calcium", "2.10", "mmol/L")], "hypocalcemia", id="hypocalcemia of total calcium"
        ),
        pytest.param(
            [("calcium_ionized", "1.05", "mmol/L")],
            "hypocalcemia",
            id="hypocalcemia of ionized calcium",
        ),
        pytest.param(
            [("phosphate", "1.60", "mmol/L")], "hyperphosphatemia", id="hyperphosphatemia"
        ),
    ],
)
def test_dehydration_relates_to_every_electrolyte_finding(results, code):
    i = run(*(res(*r) for r in results), factors=("dehydration",))
    assert [(c.code, c.relates_to) for c in i.contributing_factors] == [("dehydration", (code,))]


def test_dehydration_does_not_relate_to_albumin_folate_or_pth_findings():
    i = run(
        res("albumin", "30", "g/L"),
        res("folate", "5", "nmol/L"),
        res("pth", "8.0", "pmol/L"),
        factors=("dehydration",),
    )
    assert set(i.finding_codes) == {"hypoalbuminemia", "folate_deficiency", "pth_high"}
    assert i.contributing_factors == ()


# --- ruleset 2026.2 after unit conversion ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "first", "second"),
    [
        pytest.param(
            "11.8", "vitamin_d_deficiency", "vitamin_d_deficiency", id="11.8 ng/mL = 29.45 -> 29"
        ),
        pytest.param(
            "12", "vitamin_d_insufficiency", "vitamin_d_deficiency", id="12 ng/mL = 29.952 -> 30"
        ),
        pytest.param("20", None, "vitamin_d_insufficiency", id="20 ng/mL = 49.92 -> 50"),
        pytest.param("29.8", None, "vitamin_d_insufficiency", id="29.8 ng/mL = 74.38 -> 74"),
        pytest.param("30", None, None, id="30 ng/mL = 74.88 -> 75"),
    ],
)
def test_vitamin_d_in_ng_ml_is_judged_on_the_rounded_nmol_l_under_both_rulesets(
    value, first, second
):
    for ruleset, code in ((R1, first), (R2, second)):
        i = run(res("vitamin_d_25oh", value, "ng/mL"), ruleset=ruleset)
        assert i.ruleset == ruleset.version
        assert i.finding_codes == ((code,) if code else ()), ruleset.version


def test_2026_2_vitamin_d_deficiency_below_50_asks_for_calcium_and_pth():
    i = run(res("vitamin_d_25oh", "49", "nmol/L"), ruleset=R2)
    assert i.finding_codes == ("vitamin_d_deficiency",)
    assert i.follow_up_codes == ("check_calcium", "check_pth")
    assert finding_of(i, "vitamin_d_deficiency")["reference_range"]["low"] == 75
