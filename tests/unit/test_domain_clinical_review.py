"""Cases a clinical review of the engine turned up: each is a panel where an earlier answer was
wrong, contradictory or unsafe, with the answer a careful clinician expects."""

from __future__ import annotations

import datetime as dt

from tests.builders import D, finding_of, reject, res, result_of, run

PLUS_TWO = dt.timezone(dt.timedelta(hours=2))
MINUS_FIVE = dt.timezone(dt.timedelta(hours=-5))


# --- a critical total calcium is never lost ----------------------------------------------


def test_critical_total_calcium_confirmed_by_a_low_ionized_value_makes_that_finding_critical():
    i = run(res("calcium", "1.60", "mmol/L"), res("calcium_ionized", "1.10", "mmol/L"))
    assert i.finding_codes == ("hypocalcemia",) and i.priority == "critical"
    f = finding_of(i, "hypocalcemia")
    assert f["analyte"] == "calcium_ionized" and f["value"] == D("1.10")
    assert f["critical"] is True and f["severity"] in ("severe", "life_threatening")
    assert (
        "measured total calcium 1.60 mmol/L is below the critical limit 1.65" in (f["explanation"])
    )
    assert i.summary.startswith("Critical value: hypocalcemia")
    assert "measured total calcium 1.60 mmol/L below the critical limit 1.65" in i.summary


def test_the_critical_limit_is_said_of_the_measured_calcium_not_the_corrected_one():
    i = run(res("calcium", "1.60", "mmol/L"), res("albumin", "20", "g/L"))
    f = finding_of(i, "hypocalcemia")  # corrected 2.00 mmol/L: low, grade 1
    assert f["critical"] is True and f["value"] == D("2.00")
    assert "and is below the critical limit" not in f["explanation"]
    assert (
        "The measured total calcium 1.60 mmol/L is below the critical limit 1.65"
        in (f["explanation"])
    )
    assert "albumin-corrected calcium 2.00 mmol/L; measured total calcium 1.60 mmol/L below" in (
        i.summary
    )


def test_a_critical_total_with_a_normal_corrected_value_is_not_also_called_not_hypocalcemia():
    i = run(res("calcium", "1.60", "mmol/L"), res("albumin", "10", "g/L"))  # corrected 2.20
    f = finding_of(i, "hypocalcemia")
    assert f["critical"] is True and f["possibly_spurious"] is True
    assert "pseudohypocalcemia" not in i.note_codes
    assert "check_ionized_calcium" in i.follow_up_codes
    assert "not hypocalcemia" not in i.summary


def test_a_low_total_with_a_normal_ionized_value_is_still_pseudohypocalcemia():
    i = run(res("calcium", "2.00", "mmol/L"), res("calcium_ionized", "1.20", "mmol/L"))
    assert i.findings == () and "pseudohypocalcemia" in i.note_codes


# --- age on the day of collection where it was collected ---------------------------------


def test_age_is_taken_on_the_local_date_of_collection():
    # 00:30 on the 60th birthday at +02:00 is still the day before in UTC
    birthday = run(
        res("calcium", "2.18", "mmol/L"),
        birth_date=dt.date(1965, 11, 21),
        collected_at=dt.datetime(2025, 11, 21, 0, 30, tzinfo=PLUS_TWO),
    )
    assert result_of(birthday, "calcium")["reference_range"]["low"] == D("2.20")  # the ≥ 60 y band
    assert birthday.finding_codes == ("hypocalcemia",)
    # 22:30 the evening before at -05:00 is already the birthday in UTC
    day_before = run(
        res("calcium", "2.18", "mmol/L"),
        birth_date=dt.date(1965, 11, 21),
        collected_at=dt.datetime(2025, 11, 20, 22, 30, tzinfo=MINUS_FIVE),
    )
    assert result_of(day_before, "calcium")["reference_range"]["low"] == D("2.15")  # 18–59 y
    assert day_before.findings == ()


# --- one-sided laboratory ranges ---------------------------------------------------------


def test_the_open_side_of_a_one_sided_lab_range_is_judged_by_the_ruleset():
    i = run(res("potassium", "2.8", "mmol/L", high="5.0"))
    assert result_of(i, "potassium")["interpretation"] == "L"
    f = finding_of(i, "hypokalemia")
    assert f["grade"] == 3 and f["reference_range"]["source"] == "ruleset"
    assert i.status == "flagged" and i.priority == "urgent"
    assert "lab_range_open_side" in i.note_codes
    note = next(n for n in i.notes if n.code == "lab_range_open_side")
    assert "no lower limit" in note.detail and "3.5–5.1 mmol/L" in note.detail


def test_within_both_sides_a_one_sided_lab_range_is_normal_and_says_so_in_its_own_terms():
    i = run(res("potassium", "4.2", "mmol/L", high="5.0"))
    assert result_of(i, "potassium")["interpretation"] == "N"
    assert result_of(i, "potassium")["reference_range"]["source"] == "lab"
    assert i.notes == () and i.status == "normal"


def test_an_open_side_with_no_ruleset_interval_is_indeterminate_never_normal():
    i = run(res("creatinine", "1.4", "mg/dL", low="0.6"))
    assert result_of(i, "creatinine")["interpretation"] == "IND"
    assert i.status == "indeterminate"
    assert "lab_range_open_side_unjudged" in i.note_codes
    below = run(res("creatinine", "0.5", "mg/dL", low="0.6"))  # its own side still judges
    assert result_of(below, "creatinine")["interpretation"] == "L"


# --- explanations and the summary say what was judged -----------------------------------


def test_a_value_with_more_decimals_than_reported_is_named_as_reported():
    i = run(res("sodium", "135.5", "mmol/L", low="136", high="146"))
    f = finding_of(i, "hyponatremia")
    assert f["explanation"].startswith(
        "Sodium 135.5 mmol/L (136 at reporting precision) is below 136 mmol/L"
    )


def test_the_summary_never_calls_a_low_result_within_its_interval():
    i = run(res("vitamin_b12", "200", "pmol/L"), res("methylmalonic_acid", "0.3", "umol/L"))
    assert result_of(i, "vitamin_b12")["interpretation"] == "L" and i.findings == ()
    assert "within the reference intervals" not in i.summary
    assert "vitamin B12 200 pmol/L (L)" in i.summary or "vitamin b12 200 pmol/L (L)" in i.summary


def test_the_b12_note_names_mma_once():
    i = run(res("vitamin_b12", "200", "pmol/L"), res("methylmalonic_acid", "0.3", "umol/L"))
    note = next(n for n in i.notes if n.code == "b12_deficiency_unlikely")
    assert "acid Methylmalonic" not in note.detail
    assert "but Methylmalonic acid 0.30 umol/L is within its limit" in note.detail


def test_one_normal_result_is_described_in_the_singular():
    i = run(res("potassium", "4.2", "mmol/L"))
    assert i.summary.startswith("The result is within its reference interval of ruleset 2026.1")


def test_severity_is_written_as_words_in_explanations():
    i = run(res("potassium", "2.4", "mmol/L"))  # grade 4
    f = finding_of(i, "hypokalemia")
    assert f["severity"] == "life_threatening"
    assert "life-threatening" in f["explanation"] and "life_threatening" not in f["explanation"]


# --- unknown sex --------------------------------------------------------------------------


def test_unknown_sex_uses_the_sex_bands_where_they_agree():
    young = run(res("phosphate", "1.0", "mmol/L"), sex="unknown", birth_date=dt.date(2023, 1, 1))
    assert result_of(young, "phosphate")["interpretation"] == "L"  # 1–5 y: 1.39–1.74 for both
    older = run(res("phosphate", "1.0", "mmol/L"), sex="unknown", birth_date=dt.date(2016, 1, 1))
    assert result_of(older, "phosphate")["interpretation"] == "IND"  # 5–14 y: they differ


def test_an_impossible_value_is_never_shown_rounded_onto_the_limit_it_crossed():
    message = reject(res("magnesium", "24.31", "mg/dL"))["results.0.value"][0]
    assert "(10.001 mmol/L) is outside the physiologically possible range 0.05–10" in message


def test_a_birth_date_older_than_any_patient_is_refused():
    errors = reject(res("potassium", "4.0", "mmol/L"), birth_date=dt.date(1800, 1, 1))
    assert "older than 130 years" in errors["patient.birth_date"][0]


def test_a_life_threatening_value_comes_before_an_urgent_red_flag():
    i = run(
        res("calcium", "3.20", "mmol/L"),
        res("albumin", "10", "g/L"),  # corrected 3.80 mmol/L: grade 4, not a critical limit
        symptoms=("slurred_speech",),
    )
    f = finding_of(i, "hypercalcemia")
    assert f["critical"] is False and f["severity"] == "life_threatening"
    assert i.summary.startswith("Life-threatening: hypercalcemia grade 4")
    assert i.summary.index("Life-threatening") < i.summary.index("Urgent red flag")
