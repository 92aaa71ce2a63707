"""Calcium: ionized decides; else total, albumin-corrected (Payne) when albumin < 40 g/L;
critical limits on the measured value; pseudohypocalcemia; check_albumin."""

from __future__ import annotations

from tests.builders import D, finding_of, res, result_of, run


def test_low_total_with_low_albumin_is_corrected_payne():
    i = run(res("calcium", "1.90", "mmol/L"), res("albumin", "30", "g/L"))
    f = finding_of(i, "hypocalcemia")  # 1.90 + 0.02 x 10 = 2.10 < 2.15
    assert f["value"] == D("2.10") and f["measured"] == D("1.90")
    assert f["grade"] == 1 and f["interpretation"] == "L"
    assert "Albumin-corrected calcium 2.10 mmol/L" in f["explanation"]
    assert "Payne 1973" in f["explanation"]


def test_albumin_is_rounded_to_0_decimals_and_corrected_calcium_to_2():
    # albumin 3.45 g/dL = 34.5 -> 35 g/L; 2.01 + 0.02 x 5 = 2.11
    i = run(res("calcium", "2.01", "mmol/L"), res("albumin", "3.45", "g/dL"))
    assert finding_of(i, "hypocalcemia")["value"] == D("2.11")


def test_corrected_calcium_in_mg_dl_rounds_in_canonical_units():
    # 8.1 mg/dL = 2.02 mmol/L; albumin 32 g/L -> 2.02 + 0.16 = 2.18: within 2.15–2.50
    i = run(res("calcium", "8.1", "mg/dL"), res("albumin", "3.2", "g/dL"))
    assert "hypocalcemia" not in i.finding_codes
    assert "pseudohypocalcemia" in i.note_codes
    assert "check_ionized_calcium" in i.follow_up_codes
    assert result_of(i, "calcium")["interpretation"] == "L"  # the measured value stays L


def test_no_correction_when_albumin_is_40_or_more():
    i = run(res("calcium", "2.10", "mmol/L"), res("albumin", "40", "g/L"))
    f = finding_of(i, "hypocalcemia")
    assert f["value"] == D("2.10") and "measured" not in f
    assert "check_albumin" not in i.follow_up_codes


def test_albumin_39_is_corrected():
    i = run(res("calcium", "2.13", "mmol/L"), res("albumin", "39", "g/L"))
    assert "hypocalcemia" not in i.finding_codes  # 2.15: inclusive low
    assert "pseudohypocalcemia" in i.note_codes


def test_grade_is_on_the_corrected_value():
    i = run(res("calcium", "1.70", "mmol/L"), res("albumin", "25", "g/L"))
    f = finding_of(i, "hypocalcemia")  # 1.70 + 0.30 = 2.00: grade 1
    assert f["value"] == D("2.00") and f["grade"] == 1


def test_high_corrected_calcium_is_hypercalcemia():
    i = run(res("calcium", "2.45", "mmol/L"), res("albumin", "30", "g/L"))
    f = finding_of(i, "hypercalcemia")  # 2.65
    assert f["value"] == D("2.65") and f["measured"] == D("2.45") and f["interpretation"] == "H"
    assert result_of(i, "calcium")["interpretation"] == "N"


def test_critical_limits_apply_to_the_measured_value():
    i = run(res("calcium", "1.60", "mmol/L"), res("albumin", "20", "g/L"))
    f = finding_of(i, "hypocalcemia")  # corrected 2.00, but measured 1.60 < 1.65
    assert f["critical"] is True and f["interpretation"] == "LL"
    assert f["value"] == D("2.00") and f["measured"] == D("1.60") and f["grade"] == 1
    assert i.priority == "critical"
    assert result_of(i, "calcium")["interpretation"] == "LL"


def test_a_corrected_value_above_the_critical_limit_is_not_critical():
    i = run(res("calcium", "3.10", "mmol/L"), res("albumin", "25", "g/L"))
    f = finding_of(i, "hypercalcemia")  # corrected 3.40 > 3.22, measured 3.10 not critical
    assert f["critical"] is False and f["grade"] == 3
    assert i.priority == "urgent"


def test_critical_measured_calcium_with_normal_corrected_value_stays_critical():
    i = run(res("calcium", "1.64", "mmol/L"), res("albumin", "10", "g/L"))
    f = finding_of(i, "hypocalcemia")  # corrected 2.24 normal
    assert f["critical"] is True and f["possibly_spurious"] is True and f["grade"] is None
    assert f["severity"] == "severe"
    # the finding says the corrected value is normal; no note calls it "not hypocalcemia" too
    assert "pseudohypocalcemia" not in i.note_codes and i.priority == "critical"
    assert "corrected value is within the interval" in f["explanation"]


def test_lab_range_is_compared_with_the_corrected_value_in_the_lab_unit():
    # measured 8.0 mg/dL = 2.00 mmol/L; albumin 35 -> 2.10 mmol/L = 8.417 mg/dL
    low_lab = run(
        res("calcium", "8.0", "mg/dL", low="8.5", high="10.5"), res("albumin", "35", "g/L")
    )
    f = finding_of(low_lab, "hypocalcemia")
    assert f["reference_range"] == {
        "low": D("8.5"),
        "high": D("10.5"),
        "unit": "mg/dL",
        "source": "lab",
    }
    assert f["value"] == D("2.10")
    ok_lab = run(
        res("calcium", "8.0", "mg/dL", low="8.4", high="10.5"), res("albumin", "35", "g/L")
    )
    assert "hypocalcemia" not in ok_lab.finding_codes  # 8.417 >= 8.4
    assert "pseudohypocalcemia" in ok_lab.note_codes


def test_low_total_without_albumin_or_ionized_gets_check_albumin():
    i = run(res("calcium", "2.10", "mmol/L"))
    assert "hypocalcemia" in i.finding_codes and "check_albumin" in i.follow_up_codes


def test_normal_total_gets_no_check_albumin():
    assert "check_albumin" not in run(res("calcium", "2.30", "mmol/L")).follow_up_codes


def test_already_corrected_calcium_is_never_corrected_again():
    i = run(res("29265-6", "2.10", "mmol/L"), res("albumin", "30", "g/L"))
    f = finding_of(i, "hypocalcemia")
    assert f["value"] == D("2.10") and "measured" not in f
    assert "not corrected again" in f["explanation"]
    assert "check_albumin" not in run(res("29265-6", "2.10", "mmol/L")).follow_up_codes


def test_ionized_calcium_decides_and_total_gives_no_finding():
    i = run(res("calcium", "1.90", "mmol/L"), res("calcium_ionized", "1.05", "mmol/L"))
    assert i.finding_codes == ("hypocalcemia",)
    f = finding_of(i, "hypocalcemia")
    assert f["analyte"] == "calcium_ionized" and f["grade"] == 1


def test_ionized_calcium_normal_with_low_total_is_pseudohypocalcemia_without_check_ionized():
    i = run(
        res("calcium", "1.90", "mmol/L"),
        res("calcium_ionized", "1.20", "mmol/L"),
        res("albumin", "25", "g/L"),
    )
    assert i.finding_codes == ("hypoalbuminemia",)
    assert "pseudohypocalcemia" in i.note_codes
    assert "check_ionized_calcium" not in i.follow_up_codes
    assert "check_albumin" not in i.follow_up_codes


def test_ionized_calcium_decides_hypercalcemia_too():
    i = run(res("calcium", "2.70", "mmol/L"), res("calcium_ionized", "1.25", "mmol/L"))
    assert i.finding_codes == () and i.status == "normal"
    j = run(res("calcium", "2.30", "mmol/L"), res("calcium_ionized", "1.40", "mmol/L"))
    assert j.finding_codes == ("hypercalcemia",)


def test_critical_total_with_normal_ionized_still_a_critical_possibly_spurious_finding():
    i = run(res("calcium", "1.60", "mmol/L"), res("calcium_ionized", "1.20", "mmol/L"))
    f = finding_of(i, "hypocalcemia")
    assert f["analyte"] == "calcium" and f["critical"] is True and f["possibly_spurious"] is True
    assert i.priority == "critical" and i.status == "flagged"


def test_ionized_in_mg_dl_is_converted_before_grading():
    i = run(res("calcium_ionized", "3.5", "mg/dL"))  # 0.87 mmol/L
    f = finding_of(i, "hypocalcemia")
    assert f["value"] == D("0.87") and f["grade"] == 3


def test_hypocalcemia_without_magnesium_vitamin_d_pth_asks_for_them():
    i = run(res("calcium", "2.00", "mmol/L"), res("albumin", "42", "g/L"))
    assert i.follow_up_codes == ("check_magnesium", "check_pth", "check_vitamin_d")


def test_corrected_calcium_explanation_names_both_units_and_the_formula():
    i = run(res("calcium", "7.6", "mg/dL", low="8.6", high="10.2"), res("albumin", "3.0", "g/dL"))
    text = finding_of(i, "hypocalcemia")["explanation"]
    assert text.startswith(
        "Albumin-corrected calcium 2.10 mmol/L (8.42 mg/dL) (measured "
        "1.90 mmol/L = 7.6 mg/dL; albumin 30 g/L"
    )
    assert "Payne 1973" in text and "below 8.6 mg/dL, the lower limit of" in text


def test_corrected_calcium_above_the_ruleset_high_is_hypercalcemia_with_a_lab_low_only():
    """A one-sided laboratory range ('>= 2.10') leaves the high side to the ruleset, for the
    corrected value as for the measured one: 2.30 + 0.02 x 20 = 2.70 > 2.50."""
    i = run(res("calcium", "2.30", "mmol/L", low="2.10"), res("albumin", "20", "g/L"))
    f = finding_of(i, "hypercalcemia")
    assert f["value"] == D("2.70") and f["measured"] == D("2.30")
    assert f["reference_range"]["source"] == "ruleset" and f["reference_range"]["high"] == D("2.50")
    assert "is above 2.50 mmol/L" in f["explanation"]


def test_corrected_calcium_within_a_lab_high_only_is_not_hypercalcemia_above_the_ruleset_high():
    """With the lab's '<= 2.60', a corrected 2.05 + 0.02 x 24 = 2.53 is within the lab's own
    limit, though above the ruleset's 2.50: the laboratory's range wins on its side."""
    i = run(res("calcium", "2.05", "mmol/L", high="2.60"), res("albumin", "16", "g/L"))
    assert "hypercalcemia" not in i.finding_codes and "hypocalcemia" not in i.finding_codes
    assert "pseudohypocalcemia" in i.note_codes
    above = run(res("calcium", "2.05", "mmol/L", high="2.60"), res("albumin", "10", "g/L"))
    f = finding_of(above, "hypercalcemia")  # 2.65 > 2.60: the lab's limit is the one crossed
    assert f["reference_range"]["source"] == "lab" and f["reference_range"]["high"] == D("2.60")
    assert "is above 2.60 mmol/L, the upper limit of the laboratory's range" in f["explanation"]
