"""Age at collection (whole days, calendar months, years), half-open bands, sex fallback,
unknown age."""

from __future__ import annotations

import datetime as dt

import pytest

from labinterp.domain.ages import (
    AgeBound,
    age_from_years,
    age_on,
    describe_age_span,
    place,
    whole_months,
    whole_years,
)
from tests.builders import D, finding_of, res, result_of, run

COLLECTED_DAY = dt.date(2026, 11, 20)


@pytest.mark.parametrize(
    ("birth", "on", "years"),
    [
        (dt.date(1966, 11, 20), dt.date(2026, 11, 20), 60),  # the birthday itself
        (dt.date(1966, 11, 21), dt.date(2026, 11, 20), 59),  # the day before
        (dt.date(2008, 2, 29), dt.date(2026, 2, 28), 17),  # Feb 29: not yet on Feb 28
        (dt.date(2008, 2, 29), dt.date(2026, 3, 1), 18),  # ...a year older on Mar 1
        (dt.date(2008, 2, 29), dt.date(2028, 2, 29), 20),  # leap year: on the day
        (dt.date(2008, 2, 28), dt.date(2026, 2, 28), 18),
    ],
)
def test_whole_years_at_collection(birth, on, years):
    assert whole_years(birth, on) == years


@pytest.mark.parametrize(
    ("birth", "on", "months"),
    [
        (dt.date(2026, 5, 20), dt.date(2026, 11, 20), 6),
        (dt.date(2026, 5, 21), dt.date(2026, 11, 20), 5),
        (dt.date(2026, 5, 31), dt.date(2026, 11, 30), 5),  # no Nov 31st: month not complete
        (dt.date(2026, 5, 31), dt.date(2026, 12, 1), 6),
        (dt.date(2026, 1, 31), dt.date(2026, 2, 28), 0),
        (dt.date(2026, 1, 31), dt.date(2026, 3, 1), 1),
    ],
)
def test_whole_calendar_months(birth, on, months):
    assert whole_months(birth, on) == months


def test_age_in_days_counts_whole_days():
    age = age_on(dt.date(2026, 11, 13), COLLECTED_DAY)
    assert age.days == (7, 7) and age.exact


def test_bands_are_half_open():
    adult = (AgeBound(18, "y"), AgeBound(60, "y"))
    assert place(age_on(dt.date(2008, 11, 20), COLLECTED_DAY), *adult) == "inside"
    assert place(age_on(dt.date(2008, 11, 21), COLLECTED_DAY), *adult) == "outside"
    assert place(age_on(dt.date(1966, 11, 20), COLLECTED_DAY), *adult) == "outside"
    assert place(age_on(dt.date(1966, 11, 21), COLLECTED_DAY), *adult) == "inside"


def test_age_in_whole_years_cannot_place_a_baby_in_a_day_band():
    assert place(age_from_years(0), None, AgeBound(7, "d")) == "ambiguous"
    assert place(age_from_years(0), None, AgeBound(1, "y")) == "inside"
    assert place(age_from_years(1), AgeBound(7, "d"), AgeBound(18, "y")) == "inside"


def test_age_span_descriptions():
    assert describe_age_span(AgeBound(18, "y"), AgeBound(60, "y")) == "18–59 y"
    assert describe_age_span(AgeBound(18, "y"), None) == "≥ 18 y"
    assert describe_age_span(AgeBound(0, "d"), AgeBound(7, "d")) == "< 7 d"
    assert describe_age_span(AgeBound(7, "d"), AgeBound(6, "mo")) == "7 d to < 6 mo"
    assert describe_age_span(None, None) == "all ages"


# --- band selection in interpretations ---------------------------------------------------


def test_calcium_uses_the_60_plus_band_from_the_60th_birthday():
    on_birthday = run(res("calcium", "2.18", "mmol/L"), birth_date=dt.date(1966, 11, 20))
    day_before = run(res("calcium", "2.18", "mmol/L"), birth_date=dt.date(1966, 11, 21))
    assert result_of(on_birthday, "calcium")["interpretation"] == "L"
    assert result_of(on_birthday, "calcium")["reference_range"]["low"] == D("2.20")
    assert result_of(day_before, "calcium")["interpretation"] == "N"
    assert result_of(day_before, "calcium")["reference_range"]["low"] == D("2.15")


def test_magnesium_adult_band_from_the_18th_birthday():
    adult = run(res("magnesium", "0.68", "mmol/L"), birth_date=dt.date(2008, 11, 20))
    minor = run(res("magnesium", "0.68", "mmol/L"), birth_date=dt.date(2008, 11, 21))
    assert adult.finding_codes == ("hypomagnesemia",)
    assert minor.finding_codes == () and minor.status == "normal"


def test_magnesium_neonatal_band_until_day_7():
    six_days = run(res("magnesium", "0.62", "mmol/L"), birth_date=dt.date(2026, 11, 14))
    seven_days = run(res("magnesium", "0.62", "mmol/L"), birth_date=dt.date(2026, 11, 13))
    assert result_of(six_days, "magnesium")["interpretation"] == "N"
    assert result_of(seven_days, "magnesium")["interpretation"] == "L"


def test_potassium_critical_high_is_7_under_6_months_and_6_2_from_6_months():
    young = run(res("potassium", "6.5", "mmol/L"), birth_date=dt.date(2026, 5, 21))
    older = run(res("potassium", "6.5", "mmol/L"), birth_date=dt.date(2026, 5, 20))
    assert result_of(young, "potassium")["interpretation"] == "H"
    assert result_of(young, "potassium")["reference_range"]["high"] == D("6.2")
    assert young.priority == "urgent"  # grade 3 (> 6.0)
    assert result_of(older, "potassium")["interpretation"] == "HH"
    assert older.priority == "critical"
    assert (
        run(res("potassium", "7.1", "mmol/L"), birth_date=dt.date(2026, 5, 21)).priority
        == "critical"
    )


def test_neonatal_potassium_band():
    i = run(res("potassium", "5.6", "mmol/L"), birth_date=dt.date(2026, 11, 17))
    assert result_of(i, "potassium")["interpretation"] == "N"  # 0–7 d: 3.2–5.7


@pytest.mark.parametrize(
    ("sex", "value", "code"),
    [
        ("male", "1.20", "N"),  # male 5–14 y 1.19–1.74
        ("female", "1.20", "L"),  # female 8–14 y 1.29–1.68
        ("unknown", "1.20", "IND"),  # no band for any sex at 10 y
    ],
)
def test_phosphate_sex_specific_bands(sex, value, code):
    i = run(res("phosphate", value, "mmol/L"), sex=sex, birth_date=dt.date(2016, 6, 1))
    assert result_of(i, "phosphate")["interpretation"] == code


def test_sex_specific_bands_fall_back_to_any_sex():
    i = run(res("phosphate", "1.55", "mmol/L"), sex="male", birth_date=dt.date(2009, 6, 1))
    r = result_of(i, "phosphate")  # 17 y: any-sex 16–18 y band 1.00–1.52
    assert r["interpretation"] == "H" and r["reference_range"]["high"] == D("1.52")


def test_without_age_the_adult_band_applies_with_note_age_unknown():
    i = run(
        res("calcium", "2.52", "mmol/L"),
        res("methylmalonic_acid", "0.43", "umol/L"),
        birth_date=None,
    )
    assert result_of(i, "calcium")["reference_range"]["high"] == D("2.50")  # 18–59 y
    assert "elevated_mma" in i.finding_codes  # < 65 y: 0.40
    assert "age_unknown" in i.note_codes


def test_age_years_is_used_without_birth_date():
    i = run(res("methylmalonic_acid", "0.43", "umol/L"), age_years=70)
    assert i.finding_codes == () and "age_unknown" not in i.note_codes


def test_birth_date_wins_over_age_years():
    i = run(res("calcium", "2.18", "mmol/L"), birth_date=dt.date(1960, 1, 1), age_years=30)
    assert result_of(i, "calcium")["interpretation"] == "L"  # 66 y: 2.20–2.55


def test_age_in_whole_years_too_imprecise_for_neonatal_bands_is_indeterminate():
    i = run(res("potassium", "4.0", "mmol/L"), age_years=0)
    assert result_of(i, "potassium")["interpretation"] == "IND"
    assert i.status == "indeterminate" and "age_imprecise" in i.note_codes


def test_age_imprecise_still_applies_the_tightest_critical_limit():
    i = run(res("potassium", "6.5", "mmol/L"), age_years=0)
    assert result_of(i, "potassium")["interpretation"] == "HH"
    assert finding_of(i, "hyperkalemia")["critical"] is True


def test_infant_calcium_band_from_age_years_zero():
    i = run(res("calcium", "2.70", "mmol/L"), age_years=0)
    assert result_of(i, "calcium")["interpretation"] == "N"  # < 1 y: 2.17–2.74


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "birth"),
    [
        ("vitamin_b12", "150", "pmol/L", dt.date(2012, 1, 1)),  # 14 y: B12 bands from 16 y
        ("albumin", "30", "g/L", dt.date(2026, 6, 1)),  # < 1 y
        ("phosphate", "1.5", "mmol/L", dt.date(2026, 6, 1)),  # < 1 y
        ("methylmalonic_acid", "0.3", "umol/L", dt.date(2012, 1, 1)),  # < 18 y
        ("pth", "3.0", "pmol/L", dt.date(2012, 1, 1)),
    ],
)
def test_value_with_no_interval_for_the_age_is_indeterminate_never_normal(
    analyte, value, unit, birth
):
    i = run(res(analyte, value, unit), birth_date=birth)
    assert result_of(i, analyte)["interpretation"] == "IND"
    assert result_of(i, analyte)["reference_range"] is None
    assert i.status == "indeterminate" and i.findings == ()


def test_b12_under_16_is_judged_by_a_lab_range_when_given():
    i = run(
        res("vitamin_b12", "150", "pmol/L", low="200", high="900"), birth_date=dt.date(2012, 1, 1)
    )
    assert result_of(i, "vitamin_b12")["interpretation"] == "L"
    assert finding_of(i, "b12_deficiency")["reference_range"]["source"] == "lab"
