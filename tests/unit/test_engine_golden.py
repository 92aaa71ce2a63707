"""The engine says exactly what it said when the golden output was written, to the last digit
and character: findings, grades, severities, priorities, explanations, limits, rejections.

The inputs and digests are written by ``tests/unit/engine_golden.py`` (read it before
rewriting them: a changed digest is a changed clinical answer).
"""

from __future__ import annotations

import pytest

from labinterp.domain import Ruleset
from tests.builders import RULESETS
from tests.unit.engine_golden import answer, answers, digest, read_digests, read_panels


@pytest.fixture(scope="module")
def expected() -> dict[tuple[str, str], str]:
    return read_digests()


def test_the_golden_panels_reach_every_ruleset_and_both_kinds_of_case(expected) -> None:
    cases = {case for case, _ in expected}
    assert {v for _, v in expected} == set(RULESETS)
    assert sum(c.startswith("nhanes-") for c in cases) >= 3000
    assert sum(c.startswith("unit-") for c in cases) >= 2000


def test_every_golden_panel_gets_the_same_answer_under_both_rulesets(expected) -> None:
    changed: list[tuple[str, str, str]] = []
    seen = 0
    for case, version, text in answers(read_panels(), RULESETS):
        seen += 1
        if digest(text) != expected[(case, version)]:
            changed.append((case, version, text))
    assert seen == len(expected)
    assert not changed, (
        f"{len(changed)} answers changed, e.g. {changed[0][0]} under {changed[0][1]}: "
        f"{changed[0][2]}"
    )


def test_a_changed_answer_is_caught(expected) -> None:
    """The digest sees a one-digit change in a value's scale (0.70 is not 0.7)."""
    case, panel, now = next(read_panels())
    ruleset: Ruleset = RULESETS["2026.1"]
    text = answer(panel, ruleset, now)
    assert digest(text) == expected[(case, "2026.1")]
    value = text.index('{"Decimal":"') + len('{"Decimal":"')
    altered = text[:value] + text[value:].replace('"', '0"', 1)
    assert digest(altered) != expected[(case, "2026.1")]
