"""An analyte's accepted units: the ruleset's units, in any UCUM spelling.

The engine looks a result's unit up in ``Analyte.units`` by its normalised spelling
(``labinterp.domain.units.normalise_unit``). :class:`UnitIndex` answers that lookup from the
ruleset's own table first (a dict hit: the common spellings API.md lists), and otherwise reads
the unit as UCUM (labinterp/ucum.py, cached by string) and finds the listed unit it equals:
``10*-3.mol/L`` is mmol/L, ``ug/L`` is ng/mL, ``meq/l`` is mEq/L. The UCUM library stays out
of the engine: it runs here, at the edge, once per spelling and index, and the engine receives
the listed :class:`UnitConversion`.

Only units equal to a listed one are accepted, not every unit of the same kind: which sizes
are plausible for an analyte is a clinical fact (25-OH vitamin D in pg/mL is another test,
1,25-dihydroxy vitamin D; albumin in mg/dL is urine albumin), and the ruleset states it. A unit
of another size or kind (a mass for a molar-only analyte, a volume, mmol/kg) resolves to
nothing, and the engine's acceptance rules word the field error naming the unit and the
analyte. Only what UCUM cannot know stays in the ruleset: the mass <-> substance factors
(molar masses) and equivalents <-> moles (valences). :func:`ucum_disagreements` names a ruleset
factor that contradicts UCUM (the loader refuses the file).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from labinterp.domain.ruleset import UnitConversion
from labinterp.ucum import UcumUnit, plain, read_unit

_TOLERANCE = Decimal("1e-9")  # relative: factors are written to 4 significant digits at most


class UnitIndex(Mapping[str, UnitConversion]):
    """Normalised spelling -> conversion. Iterating, ``len`` and ``values()`` give the
    ruleset's listed spellings only (the "use mmol/L or mEq/L" of an error message); a lookup
    of another spelling is resolved through UCUM and remembered."""

    __slots__ = ("_listed", "_read", "_resolved")

    def __init__(self, listed: Mapping[str, UnitConversion]):
        self._listed = dict(listed)
        self._read: list[tuple[UcumUnit, UnitConversion]] = []
        for conversion in dict.fromkeys(self._listed.values()):
            unit = read_unit(conversion.unit)
            if unit is not None:
                self._read.append((unit, conversion))
        self._resolved: dict[str, UnitConversion | None] = {}

    def get(self, key: str, default: Any = None) -> Any:
        """The engine's lookup: one dict hit for a listed spelling (no KeyError round trip)."""
        found = self._listed.get(key)
        if found is not None:
            return found
        if key not in self._resolved:
            self._resolved[key] = self._through_ucum(key)
        resolved = self._resolved[key]
        return default if resolved is None else resolved

    def __getitem__(self, key: str) -> UnitConversion:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._listed)

    def __len__(self) -> int:
        return len(self._listed)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __repr__(self) -> str:
        return f"UnitIndex({self._listed!r})"

    def _through_ucum(self, spelling: str) -> UnitConversion | None:
        unit = read_unit(spelling)
        if unit is None or unit.concentration is None:
            return None
        for listed_unit, conversion in self._read:
            if listed_unit.kind == unit.kind and _same(unit.factor_to(listed_unit), Decimal(1)):
                return conversion
        return None


def _same(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) <= _TOLERANCE * abs(b)


def ucum_disagreements(listed: Mapping[str, UnitConversion]) -> list[str]:
    """Each listed unit whose factor contradicts UCUM's for a listed unit of the same kind
    (g/dL albumin must be 10 x g/L), worded for a ruleset error."""
    problems: list[str] = []
    first_of_kind: dict[str, tuple[UcumUnit, UnitConversion]] = {}
    for conversion in dict.fromkeys(listed.values()):
        unit = read_unit(conversion.unit)
        if unit is None:
            continue
        if unit.kind not in first_of_kind:
            first_of_kind[unit.kind] = (unit, conversion)
            continue
        ref_unit, ref = first_of_kind[unit.kind]
        expected = unit.factor_to(ref_unit) * ref.factor
        if not _same(conversion.factor, expected):
            scale = unit.factor_to(ref_unit)
            problems.append(
                f"unit {conversion.unit} has factor {conversion.factor}, but UCUM makes it "
                f"{plain(expected)} ({scale} x the factor {ref.factor} of {ref.unit})"
            )
    return problems
