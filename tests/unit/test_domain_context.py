"""Red flags, contributing factors and follow-ups."""

from __future__ import annotations

import pytest

from labinterp.domain import Twitching
from tests.builders import TWITCHING, res, run

NORMAL_K = res("potassium", "4.2", "mmol/L")


def flags(**kw):
    return run(NORMAL_K, **kw)


def test_persistent_twitching_is_more_than_14_days():
    assert flags(twitching=Twitching(("toes",), 14)).red_flag_codes == ()
    i = flags(twitching=Twitching(("toes",), 15))
    assert i.red_flag_codes == ("persistent_twitching",)
    assert i.to_dict()["red_flags"][0]["urgent"] is False
    assert "15 days" in i.to_dict()["red_flags"][0]["detail"]


def test_twitching_without_duration_is_not_persistent():
    assert flags(twitching=Twitching(("toes",), None)).red_flag_codes == ()


def test_multifocal_twitching_counts_distinct_sites_case_insensitively():
    assert flags(twitching=Twitching(("Toes", "toes", " TOES "))).red_flag_codes == ()
    i = flags(twitching=Twitching(("toes", "Calf")))
    assert i.red_flag_codes == ("multifocal_twitching",)
    assert "toes, Calf" in i.red_flags[0].detail


@pytest.mark.parametrize(
    ("symptoms", "code", "urgent"),
    [
        (("stiffness",), "stiffness", False),
        (("numbness",), "sensory_symptoms", False),
        (("tingling",), "sensory_symptoms", False),
        (("muscle_wasting",), "muscle_wasting", True),
        (("walking_difficulty",), "walking_difficulty", True),
        (("slurred_speech",), "bulbar_symptoms", True),
        (("swallowing_difficulty",), "bulbar_symptoms", True),
        (("breathing_difficulty",), "bulbar_symptoms", True),
    ],
)
def test_symptom_red_flags(symptoms, code, urgent):
    i = flags(symptoms=symptoms)
    assert i.red_flag_codes == (code,)
    assert i.red_flags[0].urgent is urgent
    assert i.status == "flagged"
    assert i.priority == ("urgent" if urgent else "routine")


def test_weakness_needs_twitching():
    assert flags(symptoms=("muscle_weakness",)).red_flag_codes == ()
    i = flags(symptoms=("muscle_weakness",), twitching=TWITCHING)
    assert i.red_flag_codes == ("weakness",) and i.priority == "urgent"
    assert i.red_flags[0].detail == "muscle weakness with twitching"


def test_one_bulbar_flag_for_several_bulbar_symptoms():
    i = flags(symptoms=("slurred_speech", "swallowing_difficulty"))
    assert i.red_flag_codes == ("bulbar_symptoms",)
    assert "slurred speech and swallowing difficulty" in i.red_flags[0].detail


def test_twitching_alone_is_not_a_red_flag_and_panel_stays_normal():
    i = flags(twitching=TWITCHING, symptoms=("fatigue", "palpitations", "cramps"))
    assert i.red_flag_codes == () and i.status == "normal"


def test_any_red_flag_asks_for_clinical_evaluation_and_urgent_ones_for_neurology():
    i = flags(symptoms=("numbness",))
    assert i.follow_up_codes == ("check_b12", "clinical_evaluation")
    j = flags(symptoms=("muscle_wasting", "numbness"))
    assert j.follow_up_codes == ("check_b12", "clinical_evaluation", "urgent_neurology_referral")
    referral = j.to_dict()["follow_up"][-1]
    assert referral["reason"] == "muscle wasting"


def test_check_b12_only_when_b12_not_measured():
    i = run(NORMAL_K, res("vitamin_b12", "400", "pmol/L"), symptoms=("tingling",))
    assert "check_b12" not in i.follow_up_codes


# --- contributing factors ------------------------------------------------------------------


def factors(i):
    return {c["code"]: c["relates_to"] for c in i.to_dict()["contributing_factors"]}


def test_diuretic_relates_to_the_findings_present_only():
    i = run(
        res("potassium", "3.2", "mmol/L"),
        res("magnesium", "0.80", "mmol/L"),
        medications=("loop_diuretic", "thiazide_diuretic"),
    )
    assert factors(i) == {"loop_diuretic": ["hypokalemia"], "thiazide_diuretic": ["hypokalemia"]}


def test_factor_with_nothing_to_relate_to_is_not_listed():
    i = run(NORMAL_K, medications=("loop_diuretic",), factors=("caffeine", "vegan_diet"))
    assert i.contributing_factors == ()


def test_ppi_relates_to_magnesium_and_b12_findings_listed_once():
    i = run(
        res("magnesium", "0.60", "mmol/L"),
        res("vitamin_b12", "100", "pmol/L"),
        medications=("proton_pump_inhibitor",),
    )
    assert factors(i) == {"proton_pump_inhibitor": ["hypomagnesemia", "b12_deficiency"]}
    entry = i.to_dict()["contributing_factors"][0]
    assert "magnesium" in entry["detail"] and "B12" in entry["detail"]


@pytest.mark.parametrize("code", ["digoxin"])
def test_digoxin_relates_to_low_potassium_and_magnesium(code):
    i = run(
        res("potassium", "3.2", "mmol/L"), res("magnesium", "0.60", "mmol/L"), medications=(code,)
    )
    assert factors(i) == {code: ["hypokalemia", "hypomagnesemia"]}


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("medications", "aminoglycoside"),
        ("medications", "cisplatin"),
        ("medications", "calcineurin_inhibitor"),
        ("medications", "laxative"),
        ("factors", "alcohol"),
        ("factors", "intense_exercise"),
        ("factors", "diabetes"),
    ],
)
def test_magnesium_wasting_factors(kind, code):
    i = run(res("magnesium", "0.60", "mmol/L"), **{kind: (code,)})
    assert factors(i) == {code: ["hypomagnesemia"]}


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("medications", "h2_blocker"),
        ("medications", "metformin"),
        ("medications", "colchicine"),
        ("factors", "vegan_diet"),
        ("factors", "biotin_supplement"),
        ("factors", "recent_b12_injection"),
        ("factors", "pregnancy"),
    ],
)
def test_b12_factors(kind, code):
    i = run(res("vitamin_b12", "200", "pmol/L"), **{kind: (code,)})
    assert factors(i) == {code: ["b12_borderline"]}


@pytest.mark.parametrize(
    "code", ["caffeine", "stress", "fatigue", "alcohol", "recent_illness", "tight_footwear"]
)
def test_twitching_triggers_relate_to_twitching_only_when_present(code):
    assert run(NORMAL_K, factors=(code,)).contributing_factors == ()
    i = run(NORMAL_K, factors=(code,), twitching=TWITCHING)
    assert factors(i) == {code: ["twitching"]}


def test_tight_footwear_says_there_is_no_clinical_source():
    i = run(NORMAL_K, factors=("tight_footwear",), twitching=TWITCHING)
    detail = i.to_dict()["contributing_factors"][0]["detail"]
    assert "patient-education" in detail and "no clinical source" in detail


def test_alcohol_relates_to_both_magnesium_and_twitching():
    i = run(res("magnesium", "0.60", "mmol/L"), factors=("alcohol",), twitching=TWITCHING)
    assert factors(i) == {"alcohol": ["hypomagnesemia", "twitching"]}


def test_gadolinium_relates_to_hypocalcemia_or_pseudohypocalcemia():
    low = run(res("calcium", "2.00", "mmol/L"), factors=("gadolinium_contrast",))
    assert factors(low) == {"gadolinium_contrast": ["hypocalcemia"]}
    pseudo = run(
        res("calcium", "2.00", "mmol/L"),
        res("albumin", "30", "g/L"),
        factors=("gadolinium_contrast",),
    )
    assert factors(pseudo) == {"gadolinium_contrast": ["pseudohypocalcemia"]}


def test_dehydration_relates_to_electrolyte_findings_and_elevated_mma():
    i = run(
        res("sodium", "150", "mmol/L"),
        res("phosphate", "1.60", "mmol/L"),
        res("methylmalonic_acid", "0.50", "umol/L"),
        res("vitamin_d_25oh", "20", "nmol/L"),
        factors=("dehydration",),
    )
    assert factors(i) == {"dehydration": ["hypernatremia", "hyperphosphatemia", "elevated_mma"]}


# --- follow-ups ------------------------------------------------------------------------------


def test_check_magnesium_when_hypokalemia_and_magnesium_not_measured():
    i = run(res("potassium", "3.2", "mmol/L"))
    assert i.follow_up_codes == ("check_magnesium",)
    assert (
        run(res("potassium", "3.2", "mmol/L"), res("magnesium", "0.9", "mmol/L")).follow_up_codes
        == ()
    )


def test_follow_ups_are_one_per_code_with_reasons_joined():
    i = run(
        res("calcium", "2.00", "mmol/L"),
        res("albumin", "45", "g/L"),
        res("vitamin_d_25oh", "20", "nmol/L"),
    )
    assert i.follow_up_codes == ("check_magnesium", "check_pth")
    pth = i.to_dict()["follow_up"][1]
    assert "vitamin D deficiency" in pth["reason"] and "hypocalcemia" in pth["reason"]
    assert pth["reason"].count(";") == 1


def test_check_magnesium_reason_names_both_findings():
    i = run(
        res("potassium", "3.2", "mmol/L"),
        res("calcium", "2.00", "mmol/L"),
        res("albumin", "45", "g/L"),
        res("vitamin_d_25oh", "60", "nmol/L"),
        res("pth", "8", "pmol/L"),
    )
    first = i.to_dict()["follow_up"][0]
    assert first["code"] == "check_magnesium"
    assert first["reason"].startswith("hypokalemia and hypocalcemia")


def test_follow_ups_follow_the_clinical_order():
    i = run(
        res("potassium", "3.2", "mmol/L"),
        res("calcium", "2.00", "mmol/L"),
        res("vitamin_d_25oh", "20", "nmol/L"),
        res("vitamin_b12", "200", "pmol/L"),
        hemolyzed=True,
        symptoms=("walking_difficulty",),
        twitching=TWITCHING,
    )
    assert i.follow_up_codes == (
        "check_magnesium",
        "check_pth",
        "check_albumin",
        "check_mma",
        "repeat_potassium",
        "clinical_evaluation",
        "urgent_neurology_referral",
    )
