"""Units read as UCUM: every spelling API.md lists and their UCUM forms are accepted and
converted as the ruleset says; a unit of another kind or size is a field error naming the unit
and the analyte; a ruleset whose factors contradict UCUM does not load."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from labinterp.domain import PanelRejected, accept_panel
from labinterp.domain.types import RawPanel, RawResult
from labinterp.rulesets import RulesetError, load_ruleset
from labinterp.ucum import read_unit, ucum_code
from tests.builders import R1

REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)


def accepted(analyte: str, value: str, unit: str) -> tuple[Decimal, str]:
    panel = RawPanel(
        collected_at=dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        results=(RawResult(analyte=analyte, value=Decimal(value), unit=unit),),
    )
    result = accept_panel(panel, R1, NOW).results[0]
    return result.value, result.unit


def unit_error(analyte: str, value: str, unit: str) -> str:
    panel = RawPanel(
        collected_at=dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        results=(RawResult(analyte=analyte, value=Decimal(value), unit=unit),),
    )
    with pytest.raises(PanelRejected) as info:
        accept_panel(panel, R1, NOW)
    assert list(info.value.errors) == ["results.0.unit"], info.value.errors
    return " ".join(info.value.errors["results.0.unit"])


# API.md: "units are UCUM codes or their common spellings (mg/dL, mmol/L, mEq/L, ng/mL, nmol/L,
# pg/mL, pmol/L, g/dL, g/L, umol/L)"
@pytest.mark.parametrize(
    ("analyte", "value", "unit", "canonical"),
    [
        ("magnesium", "1.7", "mg/dL", "0.70"),
        ("magnesium", "0.80", "mmol/L", "0.80"),
        ("magnesium", "1.6", "mEq/L", "0.80"),
        ("vitamin_d_25oh", "14", "ng/mL", "35"),
        ("vitamin_d_25oh", "35", "nmol/L", "35"),
        ("vitamin_b12", "180", "pg/mL", "133"),
        ("vitamin_b12", "133", "pmol/L", "133"),
        ("albumin", "3.2", "g/dL", "32"),
        ("albumin", "32", "g/L", "32"),
        ("creatinine", "80", "umol/L", "80"),
    ],
)
def test_every_spelling_api_md_lists_is_accepted(
    analyte: str, value: str, unit: str, canonical: str
) -> None:
    assert accepted(analyte, value, unit)[0] == Decimal(canonical)


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "canonical"),
    [
        ("magnesium", "0.80", "10*-3.mol/L", "0.80"),  # mmol/L written as a power of ten
        ("magnesium", "1.6", "meq/L", "0.80"),  # UCUM's own code for mEq/L, valence 2 kept
        ("potassium", "4.1", "mmol/l", "4.1"),  # UCUM's lower-case litre
        ("vitamin_d_25oh", "14", "ug/L", "35"),  # the same size as ng/mL
        ("folate", "5", "ug/L", "11.3"),
        ("homocysteine", "10", "µmol/L", "10.0"),
        ("homocysteine", "10", "10*-6.mol/L", "10.0"),
        ("methylmalonic_acid", "300", "nmol/L", "0.30"),
        ("pth", "4.2", "pmol/L", "4.2"),
        ("vitamin_b12", "180", "ng/L", "133"),
        ("phosphate", "1.1", "MMOL/L", "1.10"),  # a lab system's capitals
    ],
)
def test_ucum_forms_of_the_listed_units_are_accepted(
    analyte: str, value: str, unit: str, canonical: str
) -> None:
    assert accepted(analyte, value, unit)[0] == Decimal(canonical)


@pytest.mark.parametrize(
    ("analyte", "unit"),
    [
        ("potassium", "mg/dL"),  # a mass: no molar mass for potassium in the ruleset
        ("potassium", "mL"),  # a volume
        ("potassium", "mmol/kg"),  # per mass, not per volume
        ("magnesium", "%"),
        ("sodium", "furlong"),  # not a unit at all
        ("vitamin_d_25oh", "pg/mL"),  # 1,25-dihydroxy vitamin D's unit, not 25-OH's
        ("albumin", "mg/dL"),  # urine albumin's size
        ("potassium", "umol/L"),  # the right kind, a size no serum potassium comes in
    ],
)
def test_a_unit_of_the_wrong_kind_or_size_is_an_error_naming_unit_and_analyte(
    analyte: str, unit: str
) -> None:
    message = unit_error(analyte, "4", unit)
    assert f"unit '{unit}' is not valid for {analyte}" in message
    assert "; use " in message  # and the units that are


def test_api_md_potassium_message_is_unchanged() -> None:
    assert unit_error("potassium", "3.2", "mg/dL") == (
        "unit 'mg/dL' is not valid for potassium; use mmol/L or mEq/L"
    )


def test_equivalents_are_not_moles_whatever_ucum_says() -> None:
    """UCUM defines eq as mol; magnesium's valence 2 makes 1.6 mEq/L 0.80 mmol/L, and an
    eq/L (not listed) is refused rather than read as 1000 mmol/L."""
    assert accepted("magnesium", "1.6", "meq/L") == (Decimal("0.80"), "mmol/L")
    assert "unit 'eq/L' is not valid for magnesium" in unit_error("magnesium", "0.0016", "eq/L")


def test_read_unit_gives_the_ucum_code_and_its_size() -> None:
    assert ucum_code("mEq/L") == "meq/L"
    assert ucum_code("µmol/L") == "umol/L"
    assert ucum_code("mcg/L") == "ug/L"
    assert ucum_code("not a unit") is None
    mg_dl, g_l = read_unit("mg/dL"), read_unit("g/L")
    assert mg_dl is not None and g_l is not None
    assert mg_dl.factor_to(g_l) == Decimal("0.01")
    assert mg_dl.concentration == "mass" and read_unit("mL").concentration is None  # type: ignore[union-attr]


def test_same_kind_factors_come_from_ucum_and_only_mass_to_moles_from_the_ruleset() -> None:
    albumin, mma, b12 = (R1.analytes[k] for k in ("albumin", "methylmalonic_acid", "vitamin_b12"))
    assert albumin.units["g/dl"].factor == Decimal("10")
    assert albumin.units["g/dl"].sources == ("ucum",)
    assert mma.units["nmol/l"].factor == Decimal("0.001")
    assert b12.units["ng/l"].factor == b12.units["pg/ml"].factor == Decimal("0.7378")
    assert b12.units["pg/ml"].sources == ("baspath_b12",)  # a molar mass: the ruleset's


def test_a_unit_without_factor_needs_a_unit_of_its_kind_before_it(tmp_path: Path) -> None:
    text = (REPO / "reference_ranges" / "2026.1.yaml").read_text(encoding="utf-8")
    old = "mg/dL: {factor: 0.3229, source: si_table_elephant}"
    assert text.count(old) == 1
    path = tmp_path / "2026.1.yaml"
    path.write_text(text.replace(old, "mg/dL: {source: ucum}"))
    with pytest.raises(RulesetError, match="analyte phosphate unit mg/dL: no factor, and no unit"):
        load_ruleset(path)


def test_a_ruleset_whose_factor_contradicts_ucum_does_not_load(tmp_path: Path) -> None:
    text = (REPO / "reference_ranges" / "2026.1.yaml").read_text(encoding="utf-8")
    old = "g/dL: {source: ucum}"
    assert text.count(old) == 1
    path = tmp_path / "2026.1.yaml"
    path.write_text(text.replace(old, "g/dL: {factor: 100, source: ucum}"))
    with pytest.raises(
        RulesetError, match=r"albumin: unit g/dL has factor 100, but UCUM makes it 10"
    ):
        load_ruleset(path)
