"""Request and response schemas of panels; one schema drives parsing, output and OpenAPI."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from labinterp.domain import Context, RawPanel, RawRange, RawResult, Twitching
from labinterp.schemas.fields import JsonNumber, StrictDate, UtcDateTime

_SHORT = validate.Length(min=1, max=100)


class _In(Schema):
    class Meta:
        unknown = EXCLUDE  # API.md: unknown fields are ignored


class PatientIn(_In):
    id = fields.String(required=True, validate=_SHORT, metadata={"example": "P-0042"})
    sex = fields.String(
        load_default="unknown", validate=validate.OneOf(["female", "male", "unknown"])
    )
    birth_date = StrictDate(load_default=None, allow_none=True)
    age_years = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(0, 130)
    )


class SpecimenIn(_In):
    type = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50))
    hemolyzed = fields.Boolean(load_default=False, truthy={True}, falsy={False})


class RangeIn(_In):
    low = JsonNumber(load_default=None, allow_none=True)
    high = JsonNumber(load_default=None, allow_none=True)
    text = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class ResultIn(_In):
    analyte = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=60),
        metadata={"description": "analyte key, e.g. magnesium (or give loinc)"},
    )
    loinc = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20))
    value = JsonNumber(load_default=None, allow_none=True)
    unit = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    reference_range = fields.Nested(RangeIn, load_default=None, allow_none=True)


class TwitchingIn(_In):
    sites = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=list)
    duration_days = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(0, 36500)
    )
    frequency = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50))


class ContextIn(_In):
    twitching = fields.Nested(TwitchingIn, load_default=None, allow_none=True)
    symptoms = fields.List(fields.String(), load_default=list)
    factors = fields.List(fields.String(), load_default=list)
    medications = fields.List(fields.String(), load_default=list)
    notes = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=10000))


class PanelIn(_In):
    accession = fields.String(
        required=True, validate=_SHORT, metadata={"example": "LAB-2026-000123"}
    )
    patient = fields.Nested(PatientIn, required=True)
    collected_at = UtcDateTime(required=True, metadata={"example": "2026-11-20T08:30:00Z"})
    specimen = fields.Nested(SpecimenIn, load_default=lambda: {"type": None, "hemolyzed": False})
    results = fields.List(fields.Nested(ResultIn), required=True)
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
                reference_range=RawRange(**r["reference_range"])
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
