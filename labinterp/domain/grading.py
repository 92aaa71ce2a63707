"""CTCAE grades and severities.

A grade table lists steps from the most severe down; the first step whose strict bound holds
applies, the last step is the fallback ("< LLN – 3.0" is grade 1: below the interval and at
least 3.0). Boundaries follow CLINICAL.md exactly: hypokalemia 2.5 is grade 3, 2.49 grade 4.
"""

from __future__ import annotations

from decimal import Decimal

from labinterp.domain.ruleset import SEVERITY_ORDER, GradeStep, GradeTable, Ruleset


def _step_text(steps: tuple[GradeStep, ...], index: int, unit: str) -> str:
    step = steps[index]
    previous = steps[index - 1] if index > 0 else None
    if step.below is not None:
        if previous is not None and previous.below is not None:
            return f"{previous.below} to < {step.below} {unit}"
        return f"< {step.below} {unit}"
    if step.above is not None:
        if previous is not None and previous.above is not None:
            return f"> {step.above} to {previous.above} {unit}"
        return f"> {step.above} {unit}"
    if previous is not None and previous.below is not None:
        return f"below the lower limit and ≥ {previous.below} {unit}"
    if previous is not None and previous.above is not None:
        return f"above the upper limit and ≤ {previous.above} {unit}"
    return "outside the interval"


def grade(
    table: GradeTable, value: Decimal, unit: str, symptom_sets: dict[str, str]
) -> tuple[int, str]:
    """(grade, how: '0.4 to < 0.5 mmol/L'). ``symptom_sets`` maps a set reported to the
    symptoms that put it there (e.g. {'neuromuscular': 'cramps'})."""
    for index, step in enumerate(table.steps):
        if step.below is not None and not value < step.below:
            continue
        if step.above is not None and not value > step.above:
            continue
        how = _step_text(table.steps, index, unit)
        if step.symptom_set and step.symptom_set in symptom_sets and step.symptom_grade:
            reported = symptom_sets[step.symptom_set]
            return step.symptom_grade, f"{how}, symptomatic: {reported} reported"
        return step.grade, how
    raise AssertionError("grade tables end with a fallback step")  # pragma: no cover


def severity(ruleset: Ruleset, code: str, grade_: int | None, critical: bool) -> str:
    """Grade 1 mild … 4 life_threatening; ungraded per the ruleset; critical at least severe."""
    rules = ruleset.severity
    if grade_ is not None:
        level = rules.by_grade.get(grade_, "life_threatening")
    else:
        level = rules.ungraded.get(code, rules.ungraded_default)
    if critical and SEVERITY_ORDER.index(level) < SEVERITY_ORDER.index(rules.critical_at_least):
        level = rules.critical_at_least
    return level
