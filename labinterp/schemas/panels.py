"""Request and response schemas of panels; one schema drives parsing, output and OpenAPI."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from labinterp.domain import Context, RawPanel, RawRange, RawResult, Twitching
from labinterp.domain.units import normalise_unit
from labinterp.schemas.fields import Identifier, JsonNumber, LocalDateTime, StrictDate, Text

SPECIMEN_TYPES = ("serum", "plasma")  # what the ruleset's intervals are for
_MANY = validate.Length(max=50)

_SHORT = validate.Length(min=1, max=100)


class _In(Schema):
    class Meta:
        unknown = EXCLUDE  # API.md: unknown fields are ignored


class PatientIn(_In):
    id = Identifier(required=True, validate=_SHORT, metadata={"example": "P-0042"})
    sex = fields.String(
        load_default="unknown", validate=validate.OneOf(["female", "male", "unknown"])
    )
    birth_date = StrictDate(load_default=None, allow_none=True)
    age_years = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(0, 130)
    )


class SpecimenIn(_In):
    @validates_schema
    def _judged_specimen(self, data: dict[str, Any], **kwargs: Any) -> None:
        kind = data.get("type")
        if kind is not None and kind.strip().lower() not in SPECIMEN_TYPES:
            raise ValidationError(
                f"{kind!r} is not judged here: the reference intervals are for "
                f"{' or '.join(SPECIMEN_TYPES)}",
                "type",
            )

    type = fields.String(
        load_default=None,
        allow_none=True,
        metadata={"description": "serum or plasma (the intervals are for these); default serum"},
    )
    hemolyzed = fields.Boolean(load_default=False, truthy={True}, falsy={False})


class RangeIn(_In):
    low = JsonNumber(load_default=None, allow_none=True)
    high = JsonNumber(load_default=None, allow_none=True)
    text = Text(load_default=None, allow_none=True, validate=validate.Length(max=500))
    unit = fields.String(
        load_default=None,
        allow_none=True,
        metadata={"description": "optional; when given it must be the result's own unit"},
    )


class ResultIn(_In):
    @validates_schema
    def _range_in_the_result_unit(self, data: dict[str, Any], **kwargs: Any) -> None:
        rr, unit = data.get("reference_range") or {}, data.get("unit")
        other = rr.get("unit")
        if other is not None and unit is not None and normalise_unit(other) != normalise_unit(unit):
            raise ValidationError(
                {
                    "unit": [
                        f"the range is in {other!r} but the value in {unit!r}: send the range "
                        "in the result's unit"
                    ]
                },
                "reference_range",
            )

    analyte = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=60),
        metadata={"description": "analyte key, e.g. magnesium (or give loinc)"},
    )
    loinc = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20))
    # value and unit load as optional so that the acceptance rules name a missing one in their
    # own words (results.N.value: value is required); the OpenAPI document says required
    # (spec_required: labinterp/api/openapi.py).
    value = JsonNumber(
        load_default=None,
        allow_none=True,
        metadata={"spec_required": True, "minimum": 0, "exclusiveMinimum": True},
    )
    unit = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=40),
        metadata={"spec_required": True, "example": "mmol/L"},
    )
    reference_range = fields.Nested(RangeIn, load_default=None, allow_none=True)
    sender_flag = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=20),
        metadata={
            "description": "the sending laboratory's own flag (e.g. L, HH, N, A), kept "
            "verbatim beside ours; where it contradicts ours the interpretation says so",
            "example": "L",
        },
    )


class TwitchingIn(_In):
    sites = fields.List(
        Text(validate=validate.Length(min=1, max=100)), load_default=list, validate=_MANY
    )
    duration_days = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(0, 36500)
    )
    frequency = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50))


class ContextIn(_In):
    twitching = fields.Nested(TwitchingIn, load_default=None, allow_none=True)
    symptoms = fields.List(fields.String(), load_default=list, validate=_MANY)
    factors = fields.List(fields.String(), load_default=list, validate=_MANY)
    medications = fields.List(fields.String(), load_default=list, validate=_MANY)
    notes = Text(load_default=None, allow_none=True, validate=validate.Length(max=10000))


class PanelIn(_In):
    """A panel as a clinic posts it (API.md "Panels")."""

    def load(self, data: Any, **kwargs: Any) -> Any:
        plain = load_plain_panel(data) if not kwargs else None
        return plain if plain is not None else super().load(data, **kwargs)

    accession = Identifier(required=True, validate=_SHORT, metadata={"example": "LAB-2026-000123"})
    patient = fields.Nested(PatientIn, required=True)
    collected_at = LocalDateTime(required=True, metadata={"example": "2026-11-20T08:30:00Z"})
    specimen = fields.Nested(SpecimenIn, load_default=lambda: {"type": None, "hemolyzed": False})
    results = fields.List(
        fields.Nested(ResultIn),
        required=True,
        validate=validate.Length(max=100),
        metadata={"minItems": 1},
    )
    context = fields.Nested(ContextIn, load_default=None, allow_none=True)

    @validates_schema
    def _at_least_one_result(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "results" in data and not data["results"]:
            raise ValidationError("at least one result is required", "results")


def to_raw_panel(data: dict[str, Any]) -> RawPanel:
    """Map a loaded ``PanelIn`` document onto the domain's value objects."""
    patient = data["patient"]
    specimen = data.get("specimen") or {}
    ctx = data.get("context") or {}
    twitching = ctx.get("twitching")
    return RawPanel(
        collected_at=data["collected_at"],
        sex=patient.get("sex", "unknown"),
        birth_date=patient.get("birth_date"),
        age_years=patient.get("age_years"),
        hemolyzed=bool(specimen.get("hemolyzed", False)),
        specimen_type=specimen.get("type"),
        results=tuple(
            RawResult(
                analyte=r.get("analyte"),
                loinc=r.get("loinc"),
                value=r.get("value"),
                unit=r.get("unit"),
                reference_range=RawRange(
                    low=r["reference_range"].get("low"),
                    high=r["reference_range"].get("high"),
                    text=r["reference_range"].get("text"),
                )
                if r.get("reference_range")
                else None,
            )
            for r in data["results"]
        ),
        context=Context(
            twitching=Twitching(
                sites=tuple(twitching.get("sites") or ()),
                duration_days=twitching.get("duration_days"),
                frequency=twitching.get("frequency"),
            )
            if twitching is not None
            else None,
            symptoms=tuple(ctx.get("symptoms") or ()),
            factors=tuple(ctx.get("factors") or ()),
            medications=tuple(ctx.get("medications") or ()),
            notes=ctx.get("notes"),
        ),
    )


# --- the plain case, without marshmallow's machinery ------------------------------------------
#
# Every POST of a panel goes through PanelIn. For a well-formed panel, marshmallow's per-field
# machinery costs about as much as everything else the API does to it; the plain path below
# builds the same document directly, with the same field classes' own conversions, and gives
# up (None) at the first thing it does not expect, so that marshmallow's full path judges it
# and words every error. tests/unit/test_panel_schema_plain_path.py holds them equal.

_ACCESSION = Identifier()
_NUMBER = JsonNumber()
_COLLECTED = LocalDateTime()
_DATE = StrictDate()
_TEXT = Text()
_SEXES = frozenset({"female", "male", "unknown"})


class _NotPlain(Exception):
    pass


def _identifier(value: Any) -> str:
    text = _ACCESSION._deserialize(value, None, None)
    if not 1 <= len(text) <= 100:
        raise _NotPlain
    return text


def _optional_string(value: Any, longest: int) -> str | None:
    if value is None:
        return None
    if type(value) is not str or len(value) > longest:
        raise _NotPlain
    return value


def _strings(value: Any, *, longest: int | None = None, text: bool = False) -> list[str]:
    if type(value) is not list or len(value) > 50:
        raise _NotPlain
    for item in value:
        if type(item) is not str or (longest is not None and not 1 <= len(item) <= longest):
            raise _NotPlain
        if text:
            _TEXT._deserialize(item, None, None)
    return list(value)


def _number(value: Any) -> Decimal | None:
    return None if value is None else _NUMBER._deserialize(value, None, None)


def _whole(value: Any, low: int, high: int) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not low <= value <= high:
        raise _NotPlain
    return value


def _patient(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise _NotPlain
    sex = value.get("sex", "unknown")
    if sex not in _SEXES or type(sex) is not str:
        raise _NotPlain
    birth = value.get("birth_date")
    return {
        "id": _identifier(value["id"]),
        "sex": sex,
        "birth_date": None if birth is None else _DATE._deserialize(birth, None, None),
        "age_years": _whole(value.get("age_years"), 0, 130),
    }


def _specimen(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise _NotPlain
    kind = _optional_string(value.get("type"), 10**6)
    if kind is not None and kind.strip().lower() not in SPECIMEN_TYPES:
        raise _NotPlain
    hemolyzed = value.get("hemolyzed", False)
    if type(hemolyzed) is not bool:
        raise _NotPlain
    return {"type": kind, "hemolyzed": hemolyzed}


def _range(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if type(value) is not dict or value.get("unit") is not None:
        raise _NotPlain  # a range with a unit: the schema's own check words any mismatch
    text = value.get("text")
    if text is not None:
        if type(text) is not str or len(text) > 500:
            raise _NotPlain
        _TEXT._deserialize(text, None, None)
    return {
        "low": _number(value.get("low")),
        "high": _number(value.get("high")),
        "text": text,
        "unit": None,
    }


def _result(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise _NotPlain
    return {
        "analyte": _optional_string(value.get("analyte"), 60),
        "loinc": _optional_string(value.get("loinc"), 20),
        "value": _number(value.get("value")),
        "unit": _optional_string(value.get("unit"), 40),
        "reference_range": _range(value.get("reference_range")),
        "sender_flag": _optional_string(value.get("sender_flag"), 20),
    }


def _twitching(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if type(value) is not dict:
        raise _NotPlain
    return {
        "sites": _strings(value.get("sites", []), longest=100, text=True),
        "duration_days": _whole(value.get("duration_days"), 0, 36500),
        "frequency": _optional_string(value.get("frequency"), 50),
    }


def _context(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if type(value) is not dict:
        raise _NotPlain
    notes = value.get("notes")
    if notes is not None:
        if type(notes) is not str or len(notes) > 10000:
            raise _NotPlain
        _TEXT._deserialize(notes, None, None)
    return {
        "twitching": _twitching(value.get("twitching")),
        "symptoms": _strings(value.get("symptoms", [])),
        "factors": _strings(value.get("factors", [])),
        "medications": _strings(value.get("medications", [])),
        "notes": notes,
    }


def load_plain_panel(data: Any) -> dict[str, Any] | None:
    """``PanelIn().load(data)`` for a panel with nothing unusual about it, built without
    marshmallow's machinery; None for anything else (marshmallow then decides)."""
    try:
        if type(data) is not dict:
            return None
        results = data["results"]
        if type(results) is not list or not 1 <= len(results) <= 100:
            return None
        specimen = data.get("specimen")
        return {
            "accession": _identifier(data["accession"]),
            "patient": _patient(data["patient"]),
            "collected_at": _COLLECTED._deserialize(data["collected_at"], None, None),
            "specimen": {"type": None, "hemolyzed": False}
            if "specimen" not in data
            else _specimen(specimen),
            "results": [_result(r) for r in results],
            "context": _context(data.get("context")),
        }
    except (_NotPlain, ValidationError, KeyError, TypeError, ValueError):
        return None
