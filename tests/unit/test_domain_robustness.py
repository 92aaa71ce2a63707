"""No panel the acceptance lets through can break the engine: real NHANES people and
randomised panels are interpreted to JSON-ready output, consistently."""

from __future__ import annotations

import csv
import random
from decimal import Decimal
from pathlib import Path

import pytest
import simplejson

from labinterp.domain import PanelRejected, Twitching, accept_panel, interpret
from tests.builders import NOW, R1, R2, raw_panel, res

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
NHANES = sorted((SHARED / "fixtures" / "nhanes").glob("*.csv"))


def check_consistent(i) -> None:
    body = i.to_dict()
    simplejson.dumps(body, use_decimal=True)
    assert not any(isinstance(v, float) for v in _walk(body))
    codes = {r["interpretation"] for r in body["results"]}
    assert codes <= {"N", "L", "LL", "H", "HH", "IND"}
    if body["findings"] or body["red_flags"]:
        assert body["status"] == "flagged"
    elif "IND" in codes:
        assert body["status"] == "indeterminate"
    else:
        assert body["status"] == "normal"
    critical = any(r["critical"] for r in body["results"])
    assert (body["priority"] == "critical") == (
        critical or any(f["critical"] for f in body["findings"])
    )
    for f in body["findings"]:
        assert f["explanation"] and f["source"]
        if f["critical"]:
            assert f["severity"] in ("severe", "life_threatening")
    assert len({f["code"] for f in body["follow_up"]}) == len(body["follow_up"])
    assert body["summary"]


def _walk(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)
    else:
        yield value


@pytest.mark.skipif(not NHANES, reason=f"no NHANES fixture under {SHARED}")
def test_every_nhanes_person_is_interpreted_with_both_rulesets():
    columns = [
        ("calcium", "calcium_total_mg_dL", "mg/dL"),
        ("potassium", "potassium_mmol_L", "mmol/L"),
        ("sodium", "sodium_mmol_L", "mmol/L"),
        ("phosphate", "phosphorus_mg_dL", "mg/dL"),
        ("albumin", "albumin_g_dL", "g/dL"),
        ("creatinine", "creatinine_mg_dL", "mg/dL"),
    ]
    flagged = 0
    with NHANES[0].open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        results = [res(a, row[c], u) for a, c, u in columns if row[c]]
        if not results:
            continue
        sex = {"F": "female", "M": "male"}.get(row["sex"], "unknown")
        for ruleset in (R1, R2):
            panel = raw_panel(*results, sex=sex, age_years=int(float(row["age_years"])))
            i = interpret(accept_panel(panel, ruleset, NOW), ruleset)
            check_consistent(i)
            flagged += i.status == "flagged"
    assert len(rows) > 6000 and flagged > 100


ANALYTE_UNITS = [
    (key, a.unit_names(), a.accepted_low, a.accepted_high) for key, a in R1.analytes.items()
]
SYMPTOMS = R1.vocabularies["symptoms"]
FACTORS = R1.vocabularies["factors"]
MEDICATIONS = R1.vocabularies["medications"]


@pytest.mark.parametrize("seed", range(40))
def test_random_panels_interpret_consistently(seed):
    rng = random.Random(seed)
    for _ in range(25):
        chosen = rng.sample(ANALYTE_UNITS, rng.randint(1, len(ANALYTE_UNITS)))
        results = []
        for key, units, low, high in chosen:
            unit = rng.choice(units)
            factor = R1.analytes[key].units[unit.casefold()].factor
            canonical = Decimal(rng.uniform(float(low), float(min(high, low * 400 + 10))))
            value = (canonical / factor).quantize(Decimal("0.001"))
            lab = rng.random() < 0.2
            results.append(
                res(
                    key,
                    str(value),
                    unit,
                    low=str(value * Decimal("0.8")) if lab else None,
                    high=str(value * Decimal("1.1")) if lab else None,
                )
            )
        kwargs = {
            "sex": rng.choice(["female", "male", "unknown"]),
            "hemolyzed": rng.random() < 0.2,
            "symptoms": tuple(rng.sample(SYMPTOMS, rng.randint(0, 3))),
            "factors": tuple(rng.sample(FACTORS, rng.randint(0, 3))),
            "medications": tuple(rng.sample(MEDICATIONS, rng.randint(0, 2))),
            "twitching": Twitching(("toes", "calf")[: rng.randint(1, 2)], rng.randint(0, 30))
            if rng.random() < 0.5
            else None,
        }
        age = rng.choice(["none", "years", "birth"])
        if age == "years":
            kwargs["age_years"] = rng.randint(0, 100)
        elif age == "none":
            kwargs["birth_date"] = None
        else:
            import datetime as dt

            kwargs["birth_date"] = dt.date(2026, 11, 20) - dt.timedelta(days=rng.randint(0, 36000))
        for ruleset in (R1, R2):
            try:
                accepted = accept_panel(raw_panel(*results, **kwargs), ruleset, NOW)
            except PanelRejected as exc:  # only impossible values may be refused
                assert all(k.endswith(".value") for k in exc.errors), exc.errors
                continue
            check_consistent(interpret(accepted, ruleset))
