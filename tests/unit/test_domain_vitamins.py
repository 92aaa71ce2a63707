"""Vitamin D and B12 decision bands; MMA; H/L without findings; 2026.2 differences."""

from __future__ import annotations

import pytest

from tests.builders import R2, D, finding_of, res, result_of, run


@pytest.mark.parametrize(
    ("value", "unit", "code"),
    [
        ("29", "nmol/L", "vitamin_d_deficiency"),
        ("30", "nmol/L", "vitamin_d_insufficiency"),
        ("49", "nmol/L", "vitamin_d_insufficiency"),
        ("50", "nmol/L", None),
        ("200", "nmol/L", None),
        ("201", "nmol/L", "vitamin_d_excess"),
        ("20", "ng/mL", None),  # 49.92 -> 50 nmol/L: adequate
        ("11.9", "ng/mL", "vitamin_d_insufficiency"),  # 29.7024 -> 30 nmol/L
        ("11.8", "ng/mL", "vitamin_d_deficiency"),  # 29.4528 -> 29 nmol/L
    ],
)
def test_vitamin_d_iom_bands_on_the_rounded_canonical_value(value, unit, code):
    i = run(res("vitamin_d_25oh", value, unit))
    assert i.finding_codes == (() if code is None else (code,))


def test_vitamin_d_finding_reference_range_is_the_adequate_band():
    f = finding_of(run(res("vitamin_d_25oh", "14", "ng/mL")), "vitamin_d_insufficiency")
    assert f["value"] == D("35")
    assert f["reference_range"] == {
        "low": D("50"),
        "high": D("200"),
        "unit": "nmol/L",
        "source": "ruleset",
    }
    assert "IOM 2011" in f["explanation"] and "14 ng/mL" in f["explanation"]


def test_vitamin_d_bands_decide_whatever_a_lab_range_says():
    i = run(res("vitamin_d_25oh", "15", "ng/mL", low="10", high="100"))
    assert result_of(i, "vitamin_d_25oh")["interpretation"] == "N"
    assert result_of(i, "vitamin_d_25oh")["reference_range"]["source"] == "lab"
    f = finding_of(i, "vitamin_d_insufficiency")  # 37 nmol/L
    assert f["reference_range"]["source"] == "ruleset"
    lab_says_low = run(res("vitamin_d_25oh", "25", "ng/mL", low="30", high="100"))
    assert result_of(lab_says_low, "vitamin_d_25oh")["interpretation"] == "L"
    assert lab_says_low.finding_codes == ()  # 62 nmol/L: adequate under IOM 2011


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("49", "vitamin_d_deficiency"),
        ("50", "vitamin_d_insufficiency"),
        ("74", "vitamin_d_insufficiency"),
        ("75", None),
        ("201", "vitamin_d_excess"),
    ],
)
def test_vitamin_d_endocrine_society_bands_in_2026_2(value, code):
    i = run(res("vitamin_d_25oh", value, "nmol/L"), ruleset=R2)
    assert i.finding_codes == (() if code is None else (code,))


def test_2026_2_adequate_band_starts_at_75():
    f = finding_of(
        run(res("vitamin_d_25oh", "60", "nmol/L"), ruleset=R2), "vitamin_d_insufficiency"
    )
    assert f["reference_range"]["low"] == D("75")


def test_2026_2_adult_magnesium_low_is_0_85_and_pediatric_unchanged():
    import datetime as dt

    adult = run(res("magnesium", "0.80", "mmol/L"), ruleset=R2)
    assert finding_of(adult, "hypomagnesemia")["reference_range"]["low"] == D("0.85")
    child = run(res("magnesium", "0.80", "mmol/L"), ruleset=R2, birth_date=dt.date(2016, 1, 1))
    assert child.finding_codes == ()
    assert run(res("magnesium", "0.80", "mmol/L")).finding_codes == ()  # 2026.1: 0.70


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("132", "b12_deficiency"),
        ("133", "b12_borderline"),
        ("258", "b12_borderline"),
        ("259", None),
    ],
)
def test_b12_nice_bands_without_mma(value, code):
    i = run(res("vitamin_b12", value, "pmol/L"))
    assert i.finding_codes == (() if code is None else (code,))


def test_b12_borderline_asks_for_mma():
    assert run(res("vitamin_b12", "200", "pmol/L")).follow_up_codes == ("check_mma",)


def test_b12_borderline_at_17_with_an_mma_that_has_no_limit_does_not_ask_for_mma_again():
    """MMA has limits from 18 y: at 17, without the laboratory's range, it was measured but
    cannot decide. B12 stays borderline and says why; 'check MMA' would ask for what is here."""
    import datetime as dt

    i = run(
        res("vitamin_b12", "200", "pmol/L"),
        res("methylmalonic_acid", "0.60", "umol/L"),
        birth_date=dt.date(2009, 6, 1),
    )
    assert i.finding_codes == ("b12_borderline",)
    assert "has no limit for this patient's age" in finding_of(i, "b12_borderline")["explanation"]
    assert result_of(i, "methylmalonic_acid")["interpretation"] == "IND"
    assert "check_mma" not in i.follow_up_codes


def test_b12_borderline_with_mma_above_its_limit_is_deficiency():
    i = run(
        res("vitamin_b12", "200", "pmol/L"),
        res("methylmalonic_acid", "0.50", "umol/L"),
        res("creatinine", "80", "umol/L", low="45", high="90"),
    )
    assert set(i.finding_codes) == {"b12_deficiency", "elevated_mma"}
    assert "confirms deficiency" in finding_of(i, "b12_deficiency")["explanation"]
    assert "check_mma" not in i.follow_up_codes


def test_b12_borderline_with_mma_within_its_limit_is_unlikely_deficiency():
    i = run(res("vitamin_b12", "200", "pmol/L"), res("methylmalonic_acid", "0.30", "umol/L"))
    assert i.finding_codes == () and i.note_codes == ("b12_deficiency_unlikely",)
    assert i.status == "normal"


def test_mma_limit_from_a_lab_range_decides_the_b12_band():
    i = run(
        res("vitamin_b12", "200", "pmol/L"), res("methylmalonic_acid", "300", "nmol/L", high="270")
    )
    assert "b12_deficiency" in i.finding_codes


def test_mma_limit_is_0_46_from_65_years():
    import datetime as dt

    i = run(
        res("vitamin_b12", "200", "pmol/L"),
        res("methylmalonic_acid", "0.45", "umol/L"),
        birth_date=dt.date(1950, 1, 1),
    )
    assert i.finding_codes == () and "b12_deficiency_unlikely" in i.note_codes


def test_b12_finding_reference_range_is_low_259():
    f = finding_of(run(res("vitamin_b12", "100", "pmol/L")), "b12_deficiency")
    assert f["reference_range"] == {
        "low": D("259"),
        "high": None,
        "unit": "pmol/L",
        "source": "ruleset",
    }


def test_b12_bands_decide_whatever_a_lab_range_says():
    i = run(res("vitamin_b12", "180", "pg/mL", low="150", high="900"))  # 133 pmol/L
    assert result_of(i, "vitamin_b12")["interpretation"] == "N"
    assert i.finding_codes == ("b12_borderline",)


def test_b12_deficiency_under_133_even_inside_a_lab_range():
    i = run(res("vitamin_b12", "170", "pg/mL", low="150", high="900"))  # 125 pmol/L
    assert i.finding_codes == ("b12_deficiency",)


def test_elevated_mma_without_creatinine_asks_for_renal_function():
    i = run(res("methylmalonic_acid", "0.60", "umol/L"))
    assert i.finding_codes == ("elevated_mma",)
    assert i.follow_up_codes == ("check_renal_function",)
    j = run(res("methylmalonic_acid", "0.60", "umol/L"), res("creatinine", "80", "umol/L"))
    assert "check_renal_function" not in j.follow_up_codes


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "code", "low", "high"),
    [
        ("vitamin_b12", "900", "pmol/L", "H", "150", "700"),
        ("folate", "60", "nmol/L", "H", "9.1", "45"),
        ("methylmalonic_acid", "0.05", "umol/L", "L", "0.10", "0.40"),
        ("homocysteine", "3.0", "umol/L", "L", "5", "15"),
    ],
)
def test_high_b12_folate_and_low_mma_homocysteine_give_a_flag_but_no_finding(
    analyte, value, unit, code, low, high
):
    i = run(res(analyte, value, unit, low=low, high=high))
    assert result_of(i, analyte)["interpretation"] == code
    assert i.findings == () and i.status == "normal"


def test_folate_below_9_1_is_folate_deficiency():
    assert run(res("folate", "4.0", "ng/mL")).finding_codes == ()  # 9.064 -> 9.1
    assert run(res("folate", "3.9", "ng/mL")).finding_codes == ("folate_deficiency",)


def test_vitamin_d_deficiency_without_calcium_and_pth_asks_for_both():
    i = run(res("vitamin_d_25oh", "20", "nmol/L"))
    assert i.follow_up_codes == ("check_calcium", "check_pth")
    j = run(res("vitamin_d_25oh", "20", "nmol/L"), res("calcium_ionized", "1.20", "mmol/L"))
    assert j.follow_up_codes == ("check_pth",)
    k = run(res("vitamin_d_25oh", "40", "nmol/L"))
    assert k.follow_up_codes == ()  # insufficiency is not deficiency
