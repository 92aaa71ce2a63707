"""The compiled ruleset's lookups answer exactly what the ruleset's own functions answer, and
``interpret_many`` gives, panel by panel, what ``accept_panel`` + ``interpret`` give."""

from __future__ import annotations

import datetime as dt

import pytest

from labinterp.domain import (
    AcceptedPanel,
    Interpretation,
    PanelRejected,
    interpret,
    interpret_many,
)
from labinterp.domain.ages import age_from_years, age_on
from labinterp.domain.compiled import CompiledRuleset
from labinterp.domain.judging import Patient, standard_of
from tests.builders import COLLECTED, NOW, R1, R2, accept, raw_panel, reject, res, run

SEXES = ("female", "male", "unknown")


def _ages() -> list[tuple[str, object]]:
    """Every day of the first three years, then around every birthday up to 100, and every
    whole year: each side of every band edge of the shipped rulesets."""
    day = COLLECTED.date()
    ages: list[tuple[str, object]] = [
        (f"{n} d", age_on(day - dt.timedelta(days=n), day)) for n in range(3 * 366)
    ]
    for years in range(3, 101):
        born = day.replace(year=day.year - years)
        for shift in (-1, 0, 1):
            birth = born + dt.timedelta(days=shift)
            ages.append((f"{years} y {shift:+d} d", age_on(birth, day)))
    ages += [(f"{years} y (in years)", age_from_years(years)) for years in range(131)]
    return ages


@pytest.mark.parametrize("ruleset", [R1, R2], ids=lambda r: r.version)
def test_every_age_and_sex_gets_the_standard_the_ruleset_gives_it(ruleset) -> None:
    """Ages capped at the ruleset's largest bounds (the compiled lookup's key) are the same
    patient to every band: the kept standard is the one computed for this very age."""
    compiled = CompiledRuleset(ruleset)
    wrong = []
    for label, age in _ages():
        for sex in SEXES:
            patient = Patient(age, sex, True, None, compiled.age_key(age))  # type: ignore[arg-type]
            for analyte in ruleset.analytes.values():
                if compiled.standard(analyte, patient) != standard_of(analyte, patient, ruleset):
                    wrong.append((label, sex, analyte.key))
    assert not wrong, wrong[:5]


def test_a_spelling_that_failed_is_refused_again_and_one_that_passed_is_accepted_again() -> None:
    mismatch = res("potassium", "4.0", "mmol/L", loinc="2951-2")  # 2951-2 is sodium
    for _ in range(2):
        assert "results.0.loinc" in reject(mismatch)
    spaced = res(" Potassium ", "4.0", "mmol/L")
    assert [r.analyte for r in accept(spaced).results] == ["potassium"]
    assert [r.analyte for r in accept(spaced).results] == ["potassium"]
    assert "results.0.analyte" in reject(res(" Potasium ", "4.0", "mmol/L"))


@pytest.mark.parametrize("ruleset", [R1, R2], ids=lambda r: r.version)
def test_interpret_many_answers_each_panel_in_order_and_a_rejected_one_does_not_stop_it(
    ruleset,
) -> None:
    panels = [
        raw_panel(res("magnesium", "0.80", "mmol/L")),
        raw_panel(res("magnesium", "0", "mmol/L")),  # impossible: rejected
        raw_panel(res("vitamin_d_25oh", "20", "ng/mL"), res("potassium", "2.4", "mmol/L")),
    ]
    answers = list(interpret_many(panels, ruleset, NOW))
    assert len(answers) == 3
    first, second, third = answers
    assert isinstance(first, Interpretation) and isinstance(third, Interpretation)
    assert isinstance(second, PanelRejected)
    assert "results.0.value" in second.errors
    assert first.to_dict() == run(res("magnesium", "0.80", "mmol/L"), ruleset=ruleset).to_dict()
    expected = interpret(accept(*panels[2].results, ruleset=ruleset), ruleset)
    assert third.to_dict() == expected.to_dict()
    # 2026.2 moved the adult magnesium limit to 0.85 (CLINICAL.md)
    assert first.finding_codes == (("hypomagnesemia",) if ruleset is R2 else ())


def test_interpret_many_hands_back_an_engine_failure_and_goes_on(monkeypatch) -> None:
    import labinterp.domain.interpretation as module

    real = module.interpret

    def failing_on_sodium(panel: AcceptedPanel, ruleset) -> Interpretation:
        if panel.results[0].analyte == "sodium":
            raise ZeroDivisionError("a bug")
        return real(panel, ruleset)

    monkeypatch.setattr(module, "interpret", failing_on_sodium)
    panels = [raw_panel(res("sodium", "140", "mmol/L")), raw_panel(res("potassium", "4", "mmol/L"))]
    failed, done = interpret_many(panels, R1, NOW)
    assert isinstance(failed, ZeroDivisionError)
    assert isinstance(done, Interpretation) and done.status == "normal"
