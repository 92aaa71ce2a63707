"""Synthetic panels resampled from the NHANES 2017–18 fixture (../shared/fixtures/nhanes/).

``resampled_panels(paths, n, seed)`` draws ``n`` real people with replacement (a bootstrap:
each panel is one person's sex, age and results, in conventional units, as NHANES reported
them), so the mix of normal and abnormal values is the real one. With ``varied=True`` each
panel instead mixes results of different people, in either unit NHANES gives, and adds what
NHANES lacks so that every part of the engine is reached: birth dates (children, band
edges), magnesium, ionized calcium, 25-OH vitamin D, B12, MMA and the others drawn around
their limits, laboratory ranges (one- and two-sided), hemolysis and context.

Seeded and deterministic: the same arguments give the same panels.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path

from labinterp.domain import Context, RawPanel, RawRange, RawResult, Twitching

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
NHANES = sorted((SHARED / "fixtures" / "nhanes").glob("*.csv"))
COLLECTED = dt.datetime(2018, 6, 30, 9, 0, tzinfo=dt.UTC)

# (analyte, conventional column and unit, SI column and unit)
COLUMNS = [
    ("calcium", ("calcium_total_mg_dL", "mg/dL"), ("calcium_total_mmol_L", "mmol/L")),
    ("potassium", ("potassium_mmol_L", "mmol/L"), ("potassium_mmol_L", "mEq/L")),
    ("sodium", ("sodium_mmol_L", "mmol/L"), ("sodium_mmol_L", "mEq/L")),
    ("phosphate", ("phosphorus_mg_dL", "mg/dL"), ("phosphorus_mmol_L", "mmol/L")),
    ("albumin", ("albumin_g_dL", "g/dL"), ("albumin_g_L", "g/L")),
    ("creatinine", ("creatinine_mg_dL", "mg/dL"), ("creatinine_umol_L", "umol/L")),
]
# analytes NHANES lacks: (analyte, unit, lowest, highest, decimals), drawn uniformly, so
# that values fall on both sides of every limit (and across 2026.2's new ones)
EXTRAS = [
    ("magnesium", "mmol/L", "0.30", "1.40", 2),
    ("magnesium", "mg/dL", "0.8", "3.2", 1),
    ("calcium_ionized", "mmol/L", "0.75", "1.70", 2),
    ("vitamin_d_25oh", "nmol/L", "10", "260", 0),
    ("vitamin_d_25oh", "ng/mL", "5", "100", 0),
    ("vitamin_b12", "pmol/L", "80", "700", 0),
    ("vitamin_b12", "pg/mL", "100", "900", 0),
    ("methylmalonic_acid", "umol/L", "0.10", "0.90", 2),
    ("homocysteine", "umol/L", "5.0", "30.0", 1),
    ("folate", "nmol/L", "4.0", "40.0", 1),
    ("pth", "pmol/L", "0.8", "12.0", 1),
]
SYMPTOMS = ("cramps", "muscle_weakness", "numbness", "tingling", "stiffness", "fatigue")
FACTORS = ("caffeine", "stress", "dehydration", "alcohol", "vegan_diet", "gadolinium_contrast")
MEDICATIONS = ("loop_diuretic", "proton_pump_inhibitor", "digoxin", "metformin", "laxative")


def read_rows(paths: Sequence[Path]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in paths:
        with path.open(newline="") as f:
            rows.extend(csv.DictReader(f))
    return rows


def _sex(row: dict[str, str]) -> str:
    return {"F": "female", "M": "male"}[row["sex"]]


def _person(row: dict[str, str]) -> RawPanel | None:
    results = tuple(
        RawResult(analyte=analyte, value=Decimal(row[column]), unit=unit)
        for analyte, (column, unit), _ in COLUMNS
        if row[column]
    )
    if not results:
        return None
    return RawPanel(
        collected_at=COLLECTED,
        results=results,
        sex=_sex(row),  # type: ignore[arg-type]
        age_years=int(row["age_years"]),
    )


def _uniform(rng: random.Random, low: str, high: str, places: int) -> Decimal:
    lo, hi = Decimal(low), Decimal(high)
    step = Decimal(1).scaleb(-places)
    return lo + step * rng.randint(0, int((hi - lo) / step))


def _lab_range(rng: random.Random, value: Decimal) -> RawRange:
    """Around the value: it may fall inside, below or above; sometimes one-sided."""
    low = (value * Decimal(rng.choice(("0.8", "0.9", "1.0", "1.1")))).quantize(value)
    high = (value * Decimal(rng.choice(("0.9", "1.0", "1.1", "1.3")))).quantize(value)
    low, high = min(low, high), max(low, high)
    shape = rng.random()
    if shape < 0.2:
        return RawRange(low=low)
    if shape < 0.4:
        return RawRange(high=high)
    return RawRange(low=low, high=high)


def _varied(rng: random.Random, rows: list[dict[str, str]]) -> RawPanel:
    results: list[RawResult] = []
    for analyte, conventional, si in COLUMNS:
        if rng.random() < 0.25:
            continue
        column, unit = rng.choice((conventional, si))
        row = rng.choice(rows)
        if row[column]:
            results.append(RawResult(analyte=analyte, value=Decimal(row[column]), unit=unit))
    for analyte, unit, low, high, places in rng.sample(EXTRAS, rng.randint(0, 4)):
        if any(r.analyte == analyte for r in results):
            continue
        results.append(
            RawResult(analyte=analyte, value=_uniform(rng, low, high, places), unit=unit)
        )
    rng.shuffle(results)
    results = [
        RawResult(r.analyte, r.loinc, r.value, r.unit, _lab_range(rng, r.value))
        if rng.random() < 0.1 and r.value is not None
        else r
        for r in results
    ]
    if not results:
        results.append(RawResult(analyte="sodium", value=Decimal(140), unit="mmol/L"))
    person = rng.choice(rows)
    sex = rng.choice((_sex(person),) * 4 + ("unknown",))
    age = rng.random()
    birth_date: dt.date | None = None
    age_years: int | None = None
    if age < 0.5:
        age_years = int(person["age_years"])
    elif age < 0.9:  # from birth to 90 years, more of them young (bands change early)
        days = int(rng.choice((30, 400, 7000, 33000)) * rng.random())
        birth_date = COLLECTED.date() - dt.timedelta(days=days)
    context = Context()
    if rng.random() < 0.15:
        twitching = (
            Twitching(
                sites=tuple(rng.sample(("calf", "eyelid", "Calf", "thigh"), rng.randint(1, 3))),
                duration_days=rng.choice((None, 3, 14, 15, 60)),
            )
            if rng.random() < 0.6
            else None
        )
        context = Context(
            twitching=twitching,
            symptoms=tuple(rng.sample(SYMPTOMS, rng.randint(0, 2))),
            factors=tuple(rng.sample(FACTORS, rng.randint(0, 2))),
            medications=tuple(rng.sample(MEDICATIONS, rng.randint(0, 2))),
        )
    return RawPanel(
        collected_at=COLLECTED,
        results=tuple(results),
        sex=sex,  # type: ignore[arg-type]
        birth_date=birth_date,
        age_years=age_years,
        hemolyzed=rng.random() < 0.05,
        context=context,
    )


def resampled_panels(
    paths: Sequence[Path], n: int, seed: int, varied: bool = False
) -> Iterator[RawPanel]:
    """``n`` panels drawn with replacement from the NHANES files (see the module's text)."""
    rows = read_rows(paths)
    rng = random.Random(seed)
    if varied:
        for _ in range(n):
            yield _varied(rng, rows)
        return
    people = [p for p in (_person(row) for row in rows) if p is not None]
    for _ in range(n):
        yield rng.choice(people)
