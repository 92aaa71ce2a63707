"""Unit strings read as UCUM (the Unified Code for Units of Measure), with ``ucumvert``.

This is the edge's unit reader: the ruleset loader (labinterp.rulesets) builds each analyte's
unit index with it and the FHIR output names UCUM codes with it; the pure engine
(labinterp.domain) never imports it. It answers which quantity a unit string measures and how
big it is, so that any UCUM spelling of a unit the ruleset lists is that unit
(``10*-3.mol/L`` is mmol/L, ``ug/L`` is ng/mL) and same-kind conversions (g/dL -> g/L,
nmol/L -> umol/L) come from UCUM, not from tables. Only the factors UCUM cannot know live in
the ruleset: mass <-> substance (a molar mass) and equivalents <-> moles (a valence).

Parsing costs about a millisecond; every answer is cached by unit string, so the ingest path
pays it once per spelling per process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any

UCUM_SYSTEM = "http://unitsofmeasure.org"

# Magnitudes come from floats (pint); 12 significant digits is far beyond any factor a lab
# uses and rounds away the binary noise (0.009999999999999998 -> 0.01).
_DIGITS = Context(prec=12)

# Common spellings that are not UCUM (or not the UCUM the sender meant), read as the UCUM
# code they mean. UCUM is case-sensitive; these are looked up case-insensitively.
_SPELLINGS = {
    "meq/l": "meq/L",
    "mcg/l": "ug/L",
    "mcmol/l": "umol/L",
    "micromol/l": "umol/L",
    "mg%": "mg/dL",
    "mg/100ml": "mg/dL",
    "g/100ml": "g/dL",
}
_SUPERSCRIPT = str.maketrans({"\u00b5": "u", "\u03bc": "u"})


def plain(value: Decimal) -> Decimal:
    """Without trailing zeros or an exponent: 10.0000 -> 10, 1.000E-3 -> 0.001."""
    return Decimal(format(value.normalize(), "f"))


@dataclass(frozen=True)
class UcumUnit:
    """A unit string read as UCUM: its code, what it measures and its size in base units."""

    code: str  # the UCUM code it was read as (``meq/L`` for ``mEq/L``)
    kind: str  # what it measures, e.g. "[mass] / [length] ** 3"; equivalents apart from moles
    magnitude: Decimal  # its size in the kind's base units (mg/dL: 0.01 kg/m3)

    @property
    def concentration(self) -> str | None:
        """'mass', 'substance' or 'equivalents' per volume; None for anything else."""
        return _CONCENTRATIONS.get(self.kind)

    def factor_to(self, other: UcumUnit) -> Decimal:
        """x in this unit is x * factor in ``other`` (same kind only)."""
        if self.kind != other.kind:
            raise ValueError(f"{self.code} ({self.kind}) is not {other.code} ({other.kind})")
        return plain(_DIGITS.divide(self.magnitude, other.magnitude))


_EQUIVALENTS = "[equivalents]"
_CONCENTRATIONS = {
    "[mass] / [length] ** 3": "mass",
    "[substance] / [length] ** 3": "substance",
    f"{_EQUIVALENTS} * [substance] / [length] ** 3": "equivalents",
}


@functools.cache
def _registry() -> Any:
    from ucumvert import PintUcumRegistry  # a second to build: only when a unit is read

    return PintUcumRegistry()


def _candidates(text: str) -> list[str]:
    plain = "".join(text.split()).translate(_SUPERSCRIPT)
    out = [plain]
    known = _SPELLINGS.get(plain.casefold())
    if known is not None:
        out.insert(0, known)
    # a lab's 'MG/DL' or 'MMOL/L' is in capitals: UCUM is case-sensitive, try the usual case
    lowered = plain.lower().replace("l", "L")
    if lowered not in out:
        out.append(lowered)
    return out


@functools.lru_cache(maxsize=4096)
def read_unit(text: str) -> UcumUnit | None:
    """The unit ``text`` as UCUM, or None when it is not one (nor a common spelling of one).

    Cached by string: a unit is parsed once per process.
    """
    registry = _registry()
    for candidate in _candidates(text):
        try:
            quantity = registry.from_ucum(candidate)
            equivalents = "equivalent" in str(quantity.units)
            base = quantity.to_base_units()
            kind = str(base.dimensionality)
            magnitude = _DIGITS.create_decimal(repr(float(base.magnitude)))
        except Exception:  # noqa: S112  not UCUM: ucumvert's and pint's errors alike
            continue
        if not magnitude.is_finite() or magnitude <= 0:
            continue
        if equivalents:  # UCUM defines eq as mol; a valence separates them (ruleset factor)
            kind = f"{_EQUIVALENTS} * {kind}"
        return UcumUnit(code=candidate, kind=kind, magnitude=magnitude)
    return None


def ucum_code(text: str) -> str | None:
    """The UCUM code of a unit string (``mEq/L`` -> ``meq/L``), or None when it has none."""
    unit = read_unit(text)
    return None if unit is None else unit.code
