"""Age at collection and half-open age bands.

Age is counted in whole days, calendar months and years since birth. A birthday is reached
on the day whose month and day are not before the birth's: someone born on 29 February turns
a year older on 1 March in common years, someone born on the 31st completes a month on the
1st of the month after a shorter one (the anniversary day has not yet passed).

A patient known only by ``age_years`` has an age *range* (N to N+1 years); a band then applies
only when the whole range lies inside it, so a 0-year-old cannot be placed in a day or month
band of the first year of life (``ambiguous``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

AgeUnit = Literal["d", "mo", "y"]
_BOUND = re.compile(r"^\s*(\d+)\s*(d|mo|y)\s*$")


@dataclass(frozen=True, order=False)
class AgeBound:
    value: int
    unit: AgeUnit

    @classmethod
    def parse(cls, text: str) -> AgeBound:
        match = _BOUND.match(text)
        if match is None:
            raise ValueError(f"age {text!r} is not like '7 d', '6 mo' or '18 y'")
        return cls(int(match.group(1)), match.group(2))  # type: ignore[arg-type]

    def approx_days(self) -> float:
        """For ordering and overlap checks only."""
        return self.value * {"d": 1.0, "mo": 30.4375, "y": 365.25}[self.unit]

    def same_point(self, other: AgeBound) -> bool:
        """Exactly the same age: 12 mo is 1 y; days are never months."""
        return (
            self._months() == other._months()
            if "d" not in (self.unit, other.unit)
            else (self.unit == other.unit and self.value == other.value)
        )

    def _months(self) -> int:
        return self.value * 12 if self.unit == "y" else self.value

    def __str__(self) -> str:
        return f"{self.value} {self.unit}"


@dataclass(frozen=True)
class Age:
    """Possible age at collection, as inclusive ranges per unit."""

    days: tuple[int, int]
    months: tuple[int, int]
    years: tuple[int, int]

    @property
    def exact(self) -> bool:
        return self.days[0] == self.days[1]

    def _range(self, unit: AgeUnit) -> tuple[int, int]:
        return {"d": self.days, "mo": self.months, "y": self.years}[unit]

    def surely_at_least(self, bound: AgeBound) -> bool:
        return self._range(bound.unit)[0] >= bound.value

    def surely_below(self, bound: AgeBound) -> bool:
        return self._range(bound.unit)[1] < bound.value


def whole_years(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def whole_months(birth: date, on: date) -> int:
    months = (on.year - birth.year) * 12 + on.month - birth.month
    return months - (on.day < birth.day)


def age_on(birth: date, on: date) -> Age:
    days = (on - birth).days
    months = whole_months(birth, on)
    years = whole_years(birth, on)
    return Age((days, days), (months, months), (years, years))


def age_from_years(years: int) -> Age:
    """Someone reported as ``years`` old: from the Nth birthday up to the day before the next."""
    low_days, high_days = 365 * years, 366 * (years + 1)  # safe outer bounds
    return Age((low_days, high_days), (12 * years, 12 * years + 11), (years, years))


def age_from_bound(bound: AgeBound) -> Age:
    if bound.unit == "y":
        return age_from_years(bound.value)
    if bound.unit == "mo":
        return Age(
            (bound.value * 28, bound.value * 31 + 30),
            (bound.value, bound.value),
            (bound.value // 12, bound.value // 12),
        )
    return Age(
        (bound.value, bound.value),
        (bound.value // 31, bound.value // 28),
        (bound.value // 366, bound.value // 365),
    )


Placement = Literal["inside", "outside", "ambiguous"]


def place(age: Age, age_min: AgeBound | None, age_max: AgeBound | None) -> Placement:
    """Where ``age`` lies relative to the half-open span [age_min, age_max)."""
    if (age_min is not None and age.surely_below(age_min)) or (
        age_max is not None and age.surely_at_least(age_max)
    ):
        return "outside"
    if (age_min is None or age.surely_at_least(age_min)) and (
        age_max is None or age.surely_below(age_max)
    ):
        return "inside"
    return "ambiguous"


def describe_age_span(age_min: AgeBound | None, age_max: AgeBound | None) -> str:
    """'all ages', '≥ 18 y', '< 1 y', '18–59 y', '7 d to < 6 mo'."""
    if age_min is not None and age_min.value == 0:
        age_min = None
    if age_min is None and age_max is None:
        return "all ages"
    if age_max is None:
        assert age_min is not None
        return f"≥ {age_min}"
    if age_min is None:
        return f"< {age_max}"
    if age_min.unit == age_max.unit:
        return f"{age_min.value}–{age_max.value - 1} {age_min.unit}"
    return f"{age_min} to < {age_max}"
