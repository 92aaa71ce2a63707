"""The interpretation as a whole: lab-range precedence, critical limits, IND, hemolysis, LOINC
mismatch, status, priority, output shape, explanations and summary."""

from __future__ import annotations

import json
from decimal import Decimal

from labinterp.domain import Twitching
from tests.builders import R1, D, finding_of, res, result_of, run

API_KEYS = {
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
FINDING_KEYS = {
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


def walk(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)
    else:
        yield value


def api_example():
    return run(
        res("magnesium", "1.1", "mg/dL"),
        res("2823-3", "3.2", "mmol/L"),
        res("calcium", "8.1", "mg/dL"),
        res("albumin", "3.2", "g/dL"),
        res("vitamin_d_25oh", "14", "ng/mL"),
        res("vitamin_b12", "180", "pg/mL", low="200", high="900"),
        twitching=Twitching(("toes",), 21, "daily"),
        symptoms=("muscle_weakness", "numbness"),
        factors=("caffeine", "stress"),
        medications=("loop_diuretic",),
    )


def test_to_dict_has_exactly_the_api_keys_and_no_floats():
    body = api_example().to_dict()
    assert set(body) == API_KEYS
    assert not any(isinstance(v, float) for v in walk(body))
    assert any(isinstance(v, Decimal) for v in walk(body))
    json.dumps(body, default=str)  # JSON-ready apart from Decimal


def test_api_example_panel():
    i = api_example()
    assert i.ruleset == "2026.1" and i.status == "flagged" and i.priority == "urgent"
    assert set(i.finding_codes) == {
        "hypomagnesemia",
        "hypokalemia",
        "hypoalbuminemia",
        "vitamin_d_insufficiency",
        "b12_borderline",
    }
    assert set(i.red_flag_codes) == {"persistent_twitching", "sensory_symptoms", "weakness"}
    mg = finding_of(i, "hypomagnesemia")
    assert set(mg) == FINDING_KEYS
    assert (mg["value"], mg["unit"], mg["grade"], mg["severity"]) == (
        D("0.45"),
        "mmol/L",
        2,
        "moderate",
    )
    assert mg["reported"] == {"value": D("1.1"), "unit": "mg/dL"}
    assert mg["reference_range"] == {
        "low": D("0.70"),
        "high": D("1.10"),
        "unit": "mmol/L",
        "source": "ruleset",
    }
    assert mg["explanation"].startswith(
        "Magnesium 0.45 mmol/L (1.1 mg/dL) is below 0.70 mmol/L, the lower limit of"
    )
    assert "CTCAE v5.0" in mg["explanation"] and "RCPA/AACB" in mg["explanation"]
    assert mg["source"].startswith("CTCAE v5.0; reference interval per ruleset 2026.1")
    assert i.follow_up_codes[-1] == "urgent_neurology_referral"
    assert i.to_dict()["contributing_factors"][0] == {
        "code": "loop_diuretic",
        "kind": "medication",
        "relates_to": ["hypokalemia", "hypomagnesemia"],
        "detail": "loop diuretics waste potassium and magnesium",
        "source": "Huang & Kuo 2007",
    }


def test_every_result_appears_with_reported_value_interval_and_loinc():
    i = api_example()
    results = i.to_dict()["results"]
    assert [r["analyte"] for r in results] == [
        "magnesium",
        "potassium",
        "calcium",
        "albumin",
        "vitamin_d_25oh",
        "vitamin_b12",
    ]
    k = results[1]
    assert k["loinc"] == "2823-3" and k["reported"] == {"value": D("3.2"), "unit": "mmol/L"}
    assert results[5]["reference_range"] == {
        "low": D("200"),
        "high": D("900"),
        "unit": "pg/mL",
        "source": "lab",
    }


def test_explanation_names_the_value_once_when_reported_canonically():
    f = finding_of(run(res("potassium", "3.2", "mmol/L")), "hypokalemia")
    assert f["explanation"].startswith("Potassium 3.2 mmol/L is below")
    assert "(3.2" not in f["explanation"]


def test_lab_range_wins_and_is_compared_as_reported_without_rounding():
    # 1.64 mg/dL = 0.674696 -> 0.67 mmol/L; lab low 1.65 mg/dL: 1.64 < 1.65 -> L
    i = run(res("magnesium", "1.64", "mg/dL", low="1.65", high="2.5"))
    r = result_of(i, "magnesium")
    assert r["interpretation"] == "L"
    assert r["reference_range"] == {
        "low": D("1.65"),
        "high": D("2.5"),
        "unit": "mg/dL",
        "source": "lab",
    }
    f = finding_of(i, "hypomagnesemia")
    assert f["reference_range"]["source"] == "lab" and "laboratory" in f["explanation"]
    assert f["source"].endswith("laboratory reference range")


def test_lab_range_bounds_are_inclusive():
    i = run(res("potassium", "3.4", "mmol/L", low="3.4", high="5.0"))
    assert result_of(i, "potassium")["interpretation"] == "N" and i.status == "normal"


def test_lab_range_overrides_a_ruleset_flag():
    i = run(res("potassium", "5.3", "mmol/L", low="3.5", high="5.5"))
    assert i.findings == () and i.status == "normal"  # ruleset high would be 5.1


def test_one_sided_lab_range_judges_only_its_side():
    i = run(res("methylmalonic_acid", "350", "nmol/L", high="300"))
    assert i.finding_codes == ("elevated_mma",)
    assert result_of(i, "methylmalonic_acid")["reference_range"] == {
        "low": None,
        "high": D("300"),
        "unit": "nmol/L",
        "source": "lab",
    }


def test_critical_value_is_a_finding_even_inside_a_lab_range():
    i = run(res("potassium", "2.7", "mmol/L", low="2.5", high="5.0"))
    f = finding_of(i, "hypokalemia")
    assert f["interpretation"] == "LL" and f["critical"] is True and f["grade"] == 3
    assert "within the laboratory's range" in f["explanation"]
    assert "critical limit 2.8 mmol/L" in f["explanation"]
    assert i.priority == "critical"


def test_creatinine_without_lab_range_is_indeterminate():
    i = run(res("creatinine", "80", "umol/L"))
    assert result_of(i, "creatinine")["interpretation"] == "IND"
    assert i.status == "indeterminate" and i.priority == "routine"
    assert "could not be judged" in i.summary


def test_creatinine_with_lab_range():
    i = run(res("creatinine", "1.4", "mg/dL", low="0.6", high="1.2"))
    f = finding_of(i, "creatinine_high")
    assert f["value"] == D("124") and f["severity"] == "mild" and f["grade"] is None


def test_indeterminate_does_not_hide_a_finding():
    i = run(res("creatinine", "80", "umol/L"), res("sodium", "130", "mmol/L"))
    assert i.status == "flagged"
    assert "Not judged: creatinine" in i.summary


def test_normal_panel():
    i = run(res("potassium", "4.2", "mmol/L"), res("sodium", "140", "mmol/L"))
    assert (i.status, i.priority) == ("normal", "routine")
    assert i.findings == () and i.notes == () and i.follow_up == ()
    assert "within the reference intervals of ruleset 2026.1" in i.summary


def test_hemolysis_marks_hyperkalemia_and_hypermagnesemia_possibly_spurious():
    i = run(
        res("potassium", "5.8", "mmol/L"),
        res("magnesium", "1.20", "mmol/L"),
        res("sodium", "150", "mmol/L"),
        hemolyzed=True,
    )
    assert finding_of(i, "hyperkalemia")["possibly_spurious"] is True
    assert finding_of(i, "hypermagnesemia")["possibly_spurious"] is True
    assert finding_of(i, "hypernatremia")["possibly_spurious"] is False
    assert "repeat_potassium" in i.follow_up_codes
    assert "hemolyzed" in finding_of(i, "hyperkalemia")["explanation"]


def test_hemolysis_critical_potassium_stays_critical():
    i = run(res("potassium", "6.8", "mmol/L"), hemolyzed=True)
    f = finding_of(i, "hyperkalemia")
    assert f["critical"] is True and f["possibly_spurious"] is True
    assert i.priority == "critical"


def test_hemolysis_repeat_potassium_for_any_potassium_result():
    normal = run(res("potassium", "4.0", "mmol/L"), hemolyzed=True)
    assert normal.follow_up_codes == ("repeat_potassium",) and normal.status == "normal"
    low = run(res("potassium", "3.2", "mmol/L"), res("magnesium", "0.9", "mmol/L"), hemolyzed=True)
    assert finding_of(low, "hypokalemia")["possibly_spurious"] is False
    assert "repeat_potassium" in low.follow_up_codes
    assert run(res("magnesium", "0.9", "mmol/L"), hemolyzed=True).follow_up_codes == ()


def test_loinc_unit_mismatch_note_names_the_analyte():
    i = run(res("19123-9", "0.80", "mmol/L"), res("2823-3", "4.0", "mmol/L"))
    assert i.note_codes == ("loinc_unit_mismatch",)
    note = i.to_dict()["notes"][0]
    assert note["analyte"] == "magnesium" and "magnesium" in note["detail"]
    assert "19123-9" in note["detail"] and "mmol/L" in note["detail"]
    assert result_of(i, "magnesium")["value"] == D("0.80")


def test_status_flagged_by_a_red_flag_alone():
    i = run(res("potassium", "4.0", "mmol/L"), symptoms=("stiffness",))
    assert i.status == "flagged" and i.findings == ()


def test_findings_are_ordered_most_important_first():
    i = run(
        res("magnesium", "0.60", "mmol/L"),
        res("potassium", "2.6", "mmol/L"),
        res("sodium", "122", "mmol/L"),
    )
    assert i.finding_codes == ("hypokalemia", "hyponatremia", "hypomagnesemia")


def test_summary_says_the_most_important_thing_first():
    i = run(
        res("magnesium", "0.60", "mmol/L"),
        res("potassium", "2.6", "mmol/L"),
        symptoms=("muscle_wasting",),
    )
    assert i.summary.startswith(
        "Critical value: hypokalemia grade 3 (potassium 2.6 mmol/L, below "
        "the critical limit 2.8 mmol/L)"
    )
    assert i.summary.index("Urgent red flag") < i.summary.index("hypomagnesemia")
    assert "Suggested follow-up" in i.summary


def test_summary_leads_with_an_urgent_red_flag_when_nothing_is_critical():
    i = run(res("magnesium", "0.60", "mmol/L"), symptoms=("walking_difficulty",))
    assert i.summary.startswith("Urgent red flag: difficulty walking.")


def test_interpretation_is_frozen_and_records_its_ruleset():
    import dataclasses

    import pytest

    i = run(res("potassium", "4.0", "mmol/L"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        i.status = "flagged"  # type: ignore[misc]
    assert i.to_dict()["ruleset"] == R1.version
