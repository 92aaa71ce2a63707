"""Request and response schemas of panels; one schema drives parsing, output and OpenAPI."""

from __future__ import annotations

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
