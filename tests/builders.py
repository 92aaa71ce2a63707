"""Builders for tests: a panel in one line, interpreted with the shipped rulesets.

Used by the unit tests, handy in a REPL: ``run(res("potassium", "2.6", "mmol/L")).summary``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from labinterp.domain import (
    AcceptedPanel,
    Context,
    Interpretation,
    PanelRejected,
    RawPanel,
    RawRange,
    RawResult,
    Twitching,
    accept_panel,
    interpret,
)
from labinterp.domain.ruleset import Ruleset
from labinterp.rulesets import load_rulesets


def shipped_rulesets() -> dict[str, Ruleset]:
    """The repository's rulesets, read by the same loader as startup."""
    return load_rulesets()


RULESETS = shipped_rulesets()
R1 = RULESETS["2026.1"]
R2 = RULESETS["2026.2"]
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
COLLECTED = dt.datetime(2026, 11, 20, 8, 30, tzinfo=dt.UTC)
ADULT_BIRTH = dt.date(1984, 3, 9)  # 42 y at collection
_UNSET: Any = object()


def D(text: str | int) -> Decimal:
    return Decimal(str(text))


def res(
    name: str | None,
    value: str | int | None,
    unit: str | None,
    low: str | None = None,
    high: str | None = None,
    loinc: str | None = None,
) -> RawResult:
    """A raw result; ``name`` containing a dash is taken as a LOINC code."""
    if name is not None and "-" in name and name[0].isdigit():
        loinc, name = name, None
    rr = (
        None
        if low is None and high is None
        else RawRange(None if low is None else D(low), None if high is None else D(high))
    )
    return RawResult(
        analyte=name,
        loinc=loinc,
        value=None if value is None else D(value),
        unit=unit,
        reference_range=rr,
    )


def raw_panel(
    *results: RawResult,
    sex: str = "female",
    birth_date: Any = _UNSET,
    age_years: int | None = None,
    hemolyzed: bool = False,
    twitching: Twitching | None = None,
    symptoms: tuple[str, ...] = (),
    factors: tuple[str, ...] = (),
    medications: tuple[str, ...] = (),
    collected_at: dt.datetime = COLLECTED,
) -> RawPanel:
    if birth_date is _UNSET:
        birth_date = None if age_years is not None else ADULT_BIRTH
    return RawPanel(
        collected_at=collected_at,
        results=tuple(results),
        sex=sex,  # type: ignore[arg-type]
        birth_date=birth_date,
        age_years=age_years,
        hemolyzed=hemolyzed,
        context=Context(
            twitching=twitching, symptoms=symptoms, factors=factors, medications=medications
        ),
    )


def accept(*results: RawResult, ruleset: Any = R1, **kw: Any) -> AcceptedPanel:
    return accept_panel(raw_panel(*results, **kw), ruleset, NOW)


def run(*results: RawResult, ruleset: Any = R1, **kw: Any) -> Interpretation:
    return interpret(accept(*results, ruleset=ruleset, **kw), ruleset)


def reject(*results: RawResult, ruleset: Any = R1, **kw: Any) -> dict[str, list[str]]:
    """The errors of a panel that must be rejected (AssertionError if it is accepted)."""
    try:
        accept(*results, ruleset=ruleset, **kw)
    except PanelRejected as exc:
        return exc.errors
    raise AssertionError("the panel was accepted")


def result_of(i: Interpretation, analyte: str) -> dict[str, Any]:
    return next(r for r in i.to_dict()["results"] if r["analyte"] == analyte)


def finding_of(i: Interpretation, code: str) -> dict[str, Any]:
    found = [f for f in i.to_dict()["findings"] if f["code"] == code]
    assert found, f"no finding {code}; have {i.finding_codes}"
    return found[0]


TWITCHING = Twitching(sites=("toes",), duration_days=3)
