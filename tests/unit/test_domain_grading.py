"""CTCAE v5.0 grade boundaries, exactly as CLINICAL.md's table, and severity mapping."""

from __future__ import annotations

import pytest

from tests.builders import TWITCHING, D, finding_of, res, run

# (analyte, value in canonical unit, expected code, finding, grade, critical)
CASES = [
    # hypomagnesemia: 1 >= 0.5; 2 0.4–<0.5; 3 0.3–<0.4; 4 < 0.3 (adult low 0.70)
    ("magnesium", "0.69", "L", "hypomagnesemia", 1, False),
    ("magnesium", "0.50", "L", "hypomagnesemia", 1, False),
    ("magnesium", "0.49", "L", "hypomagnesemia", 2, False),
    ("magnesium", "0.41", "L", "hypomagnesemia", 2, False),
    ("magnesium", "0.40", "LL", "hypomagnesemia", 2, True),
    ("magnesium", "0.39", "LL", "hypomagnesemia", 3, True),
    ("magnesium", "0.30", "LL", "hypomagnesemia", 3, True),
    ("magnesium", "0.29", "LL", "hypomagnesemia", 4, True),
    # hypermagnesemia: 1 <= 1.23; 3 > 1.23–3.30; 4 > 3.30 (no grade 2)
    ("magnesium", "1.11", "H", "hypermagnesemia", 1, False),
    ("magnesium", "1.23", "H", "hypermagnesemia", 1, False),
    ("magnesium", "1.24", "H", "hypermagnesemia", 3, False),
    ("magnesium", "2.02", "H", "hypermagnesemia", 3, False),
    ("magnesium", "2.03", "HH", "hypermagnesemia", 3, True),
    ("magnesium", "3.30", "HH", "hypermagnesemia", 3, True),
    ("magnesium", "3.31", "HH", "hypermagnesemia", 4, True),
    # hypokalemia: < low to 3.0: 1; 3: 2.5–<3.0; 4: < 2.5; critical < 2.8
    ("potassium", "3.4", "L", "hypokalemia", 1, False),
    ("potassium", "3.0", "L", "hypokalemia", 1, False),
    ("potassium", "2.9", "L", "hypokalemia", 3, False),
    ("potassium", "2.8", "L", "hypokalemia", 3, False),
    ("potassium", "2.7", "LL", "hypokalemia", 3, True),
    ("potassium", "2.6", "LL", "hypokalemia", 3, True),
    ("potassium", "2.5", "LL", "hypokalemia", 3, True),
    ("potassium", "2.4", "LL", "hypokalemia", 4, True),
    # hyperkalemia: 1 <= 5.5; 2 > 5.5–6.0; 3 > 6.0–7.0; 4 > 7.0; critical > 6.2 (adult)
    ("potassium", "5.2", "H", "hyperkalemia", 1, False),
    ("potassium", "5.5", "H", "hyperkalemia", 1, False),
    ("potassium", "5.6", "H", "hyperkalemia", 2, False),
    ("potassium", "6.0", "H", "hyperkalemia", 2, False),
    ("potassium", "6.1", "H", "hyperkalemia", 3, False),
    ("potassium", "6.2", "H", "hyperkalemia", 3, False),
    ("potassium", "6.3", "HH", "hyperkalemia", 3, True),
    ("potassium", "7.0", "HH", "hyperkalemia", 3, True),
    ("potassium", "7.1", "HH", "hyperkalemia", 4, True),
    # hyponatremia: 1 >= 130; 2 125–<130; 3 120–<125; 4 < 120; critical < 120
    ("sodium", "134", "L", "hyponatremia", 1, False),
    ("sodium", "130", "L", "hyponatremia", 1, False),
    ("sodium", "129", "L", "hyponatremia", 2, False),
    ("sodium", "125", "L", "hyponatremia", 2, False),
    ("sodium", "124", "L", "hyponatremia", 3, False),
    ("sodium", "120", "L", "hyponatremia", 3, False),
    ("sodium", "119", "LL", "hyponatremia", 4, True),
    # hypernatremia: 1 <= 150; 2 > 150–155; 3 > 155–160; 4 > 160; critical > 158
    ("sodium", "146", "H", "hypernatremia", 1, False),
    ("sodium", "150", "H", "hypernatremia", 1, False),
    ("sodium", "151", "H", "hypernatremia", 2, False),
    ("sodium", "155", "H", "hypernatremia", 2, False),
    ("sodium", "156", "H", "hypernatremia", 3, False),
    ("sodium", "158", "H", "hypernatremia", 3, False),
    ("sodium", "159", "HH", "hypernatremia", 3, True),
    ("sodium", "160", "HH", "hypernatremia", 3, True),
    ("sodium", "161", "HH", "hypernatremia", 4, True),
    # hypocalcemia (total, uncorrected, 18–59 y 2.15–2.50): 1 >= 2.0; 2 1.75–<2.0; 3 1.5–<1.75
    ("calcium", "2.14", "L", "hypocalcemia", 1, False),
    ("calcium", "2.00", "L", "hypocalcemia", 1, False),
    ("calcium", "1.99", "L", "hypocalcemia", 2, False),
    ("calcium", "1.75", "L", "hypocalcemia", 2, False),
    ("calcium", "1.74", "L", "hypocalcemia", 3, False),
    ("calcium", "1.65", "L", "hypocalcemia", 3, False),
    ("calcium", "1.64", "LL", "hypocalcemia", 3, True),
    ("calcium", "1.50", "LL", "hypocalcemia", 3, True),
    ("calcium", "1.49", "LL", "hypocalcemia", 4, True),
    # hypercalcemia: 1 <= 2.9; 2 > 2.9–3.1; 3 > 3.1–3.4; 4 > 3.4; critical > 3.22
    ("calcium", "2.51", "H", "hypercalcemia", 1, False),
    ("calcium", "2.90", "H", "hypercalcemia", 1, False),
    ("calcium", "2.91", "H", "hypercalcemia", 2, False),
    ("calcium", "3.10", "H", "hypercalcemia", 2, False),
    ("calcium", "3.11", "H", "hypercalcemia", 3, False),
    ("calcium", "3.22", "H", "hypercalcemia", 3, False),
    ("calcium", "3.23", "HH", "hypercalcemia", 3, True),
    ("calcium", "3.40", "HH", "hypercalcemia", 3, True),
    ("calcium", "3.41", "HH", "hypercalcemia", 4, True),
    # ionized: hypo 1 >= 1.0; 2 0.9–<1.0; 3 0.8–<0.9; 4 < 0.8; critical < 0.82, > 1.55
    ("calcium_ionized", "1.14", "L", "hypocalcemia", 1, False),
    ("calcium_ionized", "1.00", "L", "hypocalcemia", 1, False),
    ("calcium_ionized", "0.99", "L", "hypocalcemia", 2, False),
    ("calcium_ionized", "0.90", "L", "hypocalcemia", 2, False),
    ("calcium_ionized", "0.89", "L", "hypocalcemia", 3, False),
    ("calcium_ionized", "0.82", "L", "hypocalcemia", 3, False),
    ("calcium_ionized", "0.81", "LL", "hypocalcemia", 3, True),
    ("calcium_ionized", "0.80", "LL", "hypocalcemia", 3, True),
    ("calcium_ionized", "0.79", "LL", "hypocalcemia", 4, True),
    # ionized hyper: 1 <= 1.5; 2 > 1.5–1.6; 3 > 1.6–1.8; 4 > 1.8
    ("calcium_ionized", "1.34", "H", "hypercalcemia", 1, False),
    ("calcium_ionized", "1.50", "H", "hypercalcemia", 1, False),
    ("calcium_ionized", "1.51", "H", "hypercalcemia", 2, False),
    ("calcium_ionized", "1.55", "H", "hypercalcemia", 2, False),
    ("calcium_ionized", "1.56", "HH", "hypercalcemia", 2, True),
    ("calcium_ionized", "1.60", "HH", "hypercalcemia", 2, True),
    ("calcium_ionized", "1.61", "HH", "hypercalcemia", 3, True),
    ("calcium_ionized", "1.80", "HH", "hypercalcemia", 3, True),
    ("calcium_ionized", "1.81", "HH", "hypercalcemia", 4, True),
]


@pytest.mark.parametrize(
    ("analyte", "value", "code", "finding", "grade", "critical"),
    CASES,
    ids=[f"{c[0]} {c[1]} is {c[2]} {c[3]} grade {c[4]}" for c in CASES],
)
def test_ctcae_grade_boundaries(analyte, value, code, finding, grade, critical):
    i = run(res(analyte, value, "mmol/L"))
    f = finding_of(i, finding)
    assert f["interpretation"] == code
    assert f["grade"] == grade
    assert f["critical"] is critical
    assert i.finding_codes == (finding,)


def test_potassium_2_6_is_critical_and_grade_3():
    i = run(res("potassium", "2.6", "mmol/L"))
    f = finding_of(i, "hypokalemia")
    assert (f["interpretation"], f["grade"], f["severity"]) == ("LL", 3, "severe")
    assert f["critical"] is True
    assert f["critical_limit"]["value"] == D("2.8") and f["critical_limit"]["direction"] == "below"
    assert i.priority == "critical" and i.status == "flagged"


@pytest.mark.parametrize("symptom", ["cramps", "muscle_weakness"])
def test_hypokalemia_is_grade_2_with_a_neuromuscular_symptom(symptom):
    f = finding_of(run(res("potassium", "3.2", "mmol/L"), symptoms=(symptom,)), "hypokalemia")
    assert f["grade"] == 2 and f["severity"] == "moderate"
    assert symptom.replace("_", " ") in f["explanation"]


def test_hypokalemia_is_grade_2_when_twitching_is_reported():
    f = finding_of(run(res("potassium", "3.0", "mmol/L"), twitching=TWITCHING), "hypokalemia")
    assert f["grade"] == 2


def test_hypokalemia_stays_grade_1_with_a_symptom_that_is_not_neuromuscular():
    f = finding_of(
        run(res("potassium", "3.2", "mmol/L"), symptoms=("numbness", "fatigue")), "hypokalemia"
    )
    assert f["grade"] == 1 and f["severity"] == "mild"


def test_symptoms_do_not_change_hypokalemia_grade_3_or_4():
    i = run(res("potassium", "2.9", "mmol/L"), symptoms=("cramps",))
    assert finding_of(i, "hypokalemia")["grade"] == 3


@pytest.mark.parametrize(
    ("value", "severity"),
    [("0.60", "mild"), ("0.45", "moderate"), ("0.35", "severe"), ("0.25", "life_threatening")],
)
def test_severity_follows_the_grade(value, severity):
    f = finding_of(run(res("magnesium", value, "mmol/L")), "hypomagnesemia")
    assert f["severity"] == severity


def test_a_critical_grade_2_finding_is_at_least_severe():
    f = finding_of(run(res("magnesium", "0.40", "mmol/L")), "hypomagnesemia")
    assert f["grade"] == 2 and f["critical"] is True and f["severity"] == "severe"


def test_a_critical_grade_4_finding_stays_life_threatening():
    f = finding_of(run(res("potassium", "2.4", "mmol/L")), "hypokalemia")
    assert f["severity"] == "life_threatening"


def test_grade_3_without_critical_value_makes_priority_urgent():
    i = run(res("potassium", "2.9", "mmol/L"))
    assert i.priority == "urgent"


def test_grade_2_alone_is_routine():
    assert run(res("magnesium", "0.45", "mmol/L")).priority == "routine"


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "code", "severity"),
    [
        ("phosphate", "0.70", "mmol/L", "hypophosphatemia", "mild"),
        ("phosphate", "1.50", "mmol/L", "hyperphosphatemia", "mild"),
        ("albumin", "30", "g/L", "hypoalbuminemia", "mild"),
        ("albumin", "55", "g/L", "hyperalbuminemia", "mild"),
        ("folate", "9.0", "nmol/L", "folate_deficiency", "mild"),
        ("homocysteine", "15.1", "umol/L", "hyperhomocysteinemia", "mild"),
        ("pth", "7.0", "pmol/L", "pth_high", "mild"),
        ("pth", "1.5", "pmol/L", "pth_low", "mild"),
        ("methylmalonic_acid", "0.41", "umol/L", "elevated_mma", "mild"),
        ("vitamin_d_25oh", "29", "nmol/L", "vitamin_d_deficiency", "moderate"),
        ("vitamin_d_25oh", "49", "nmol/L", "vitamin_d_insufficiency", "mild"),
        ("vitamin_d_25oh", "201", "nmol/L", "vitamin_d_excess", "moderate"),
        ("vitamin_b12", "132", "pmol/L", "b12_deficiency", "moderate"),
        ("vitamin_b12", "133", "pmol/L", "b12_borderline", "mild"),
    ],
)
def test_ungraded_findings_have_their_severity_and_no_grade(analyte, value, unit, code, severity):
    f = finding_of(run(res(analyte, value, unit)), code)
    assert f["grade"] is None and f["severity"] == severity
