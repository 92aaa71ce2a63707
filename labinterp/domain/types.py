"""Value objects crossing the domain boundary.

Everything here is immutable and framework-free. Numbers are ``Decimal`` end to end so that
"1.7 mg/dL magnesium is 0.70 mmol/L" holds to the last digit (binary floats would say 0.699).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

Sex = Literal["female", "male", "unknown"]


@dataclass(frozen=True)
class RawRange:
    """A performing laboratory's own range, in the unit of its result (either side optional)."""

    low: Decimal | None = None
    high: Decimal | None = None
    text: str | None = None  # a range only given as text (FHIR referenceRange.text): kept, not used


@dataclass(frozen=True)
class RawResult:
    """One result as the sender gave it, after structural parsing (types are right, meaning
    unchecked)."""

    analyte: str | None = None
    loinc: str | None = None
    value: Decimal | None = None
    unit: str | None = None
    reference_range: RawRange | None = None


@dataclass(frozen=True)
class Twitching:
    sites: tuple[str, ...] = ()
    duration_days: int | None = None
    frequency: str | None = None


@dataclass(frozen=True)
class Context:
    twitching: Twitching | None = None
    symptoms: tuple[str, ...] = ()
    factors: tuple[str, ...] = ()
    medications: tuple[str, ...] = ()
    notes: str | None = None


@dataclass(frozen=True)
class RawPanel:
    """A panel as received. ``collected_at`` is timezone-aware (UTC when the sender gave no
    offset)."""

    collected_at: datetime
    results: tuple[RawResult, ...]
    sex: Sex = "unknown"
    birth_date: date | None = None
    age_years: int | None = None
    hemolyzed: bool = False
    specimen_type: str | None = None
    context: Context = field(default_factory=Context)


class PanelRejected(ValueError):
    """The panel is well-formed but clinically invalid. ``errors`` maps a field path of the
    request body (``results.1.unit``, ``collected_at``, ``context.symptoms.0``,
    ``patient.birth_date``; indexes from 0) to messages a person can act on."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors
