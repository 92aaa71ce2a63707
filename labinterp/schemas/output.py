"""Response shapes (for serialisation and the OpenAPI document)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Any

from marshmallow import Schema, fields

from labinterp.domain import FindingStatus, Priority
from labinterp.models import FailureCode, PanelStatus, ReviewStatus
from labinterp.schemas.common import page_schema
from labinterp.schemas.fields import UtcDateTime
from labinterp.schemas.review import ReviewOut


class _Out(Schema):
    class Meta:
        ordered = True


def _words(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


RESULT_FLAGS = ["N", "L", "LL", "H", "HH", "IND"]  # FHIR ObservationInterpretation codes


class QuantityOut(_Out):
    value = fields.Decimal(as_string=False)
    unit = fields.String()


class IntervalOut(_Out):
    """The reference interval that judged a value: the ruleset's, or the laboratory's."""

    low = fields.Decimal(as_string=False, allow_none=True)
    high = fields.Decimal(as_string=False, allow_none=True)
    unit = fields.String()
    source = fields.String(metadata={"description": "ruleset, or lab (the sender's own range)"})


class LabRangeOut(IntervalOut):
    text = fields.String(allow_none=True, metadata={"description": "a range given only as text"})


class CriticalLimitOut(_Out):
    value = fields.Decimal(as_string=False)
    unit = fields.String()
    direction = fields.String(metadata={"enum": ["below", "above"]})
    source = fields.String()


class JudgedResultOut(_Out):
    position = fields.Integer()
    analyte = fields.String()
    loinc = fields.String(allow_none=True)
    value = fields.Decimal(as_string=False, metadata={"description": "in the canonical unit"})
    unit = fields.String()
    interpretation = fields.String(metadata={"enum": RESULT_FLAGS})
    critical = fields.Boolean()
    reported = fields.Nested(QuantityOut)
    reference_range = fields.Nested(IntervalOut, allow_none=True)
    sender_flag = fields.String(
        metadata={"description": "the sending laboratory's own flag, verbatim (when it sent one)"}
    )
    sender_flag_disagrees = fields.Boolean(
        metadata={
            "description": "the sender's flag contradicts ours (a note says so); only with "
            "sender_flag"
        }
    )


class FindingOut(_Out):
    code = fields.String(metadata={"example": "hypomagnesemia"})
    analyte = fields.String()
    value = fields.Decimal(as_string=False)
    unit = fields.String()
    reported = fields.Nested(QuantityOut)
    reference_range = fields.Nested(IntervalOut, allow_none=True)
    interpretation = fields.String(metadata={"enum": RESULT_FLAGS})
    grade = fields.Integer(allow_none=True, metadata={"description": "CTCAE v5.0 grade"})
    severity = fields.String(allow_none=True)
    critical = fields.Boolean()
    possibly_spurious = fields.Boolean()
    explanation = fields.String()
    source = fields.String()
    measured = fields.Decimal(
        as_string=False,
        metadata={"description": "corrected calcium only: the measured total calcium"},
    )
    critical_limit = fields.Nested(
        CriticalLimitOut, metadata={"description": "only on critical findings"}
    )


class RedFlagOut(_Out):
    code = fields.String()
    detail = fields.String()
    urgent = fields.Boolean()
    source = fields.String()


class ContributingFactorOut(_Out):
    code = fields.String()
    kind = fields.String(metadata={"enum": ["factor", "medication"]})
    relates_to = fields.List(fields.String())
    detail = fields.String()
    source = fields.String()


class FollowUpOut(_Out):
    code = fields.String()
    reason = fields.String()
    source = fields.String()


class NoteOut(_Out):
    code = fields.String()
    detail = fields.String()
    analyte = fields.String()


class InterpretationOut(_Out):
    id = fields.UUID()
    panel_id = fields.UUID()
    revision = fields.Integer()
    ruleset = fields.String()
    created_at = UtcDateTime()
    status = fields.String(metadata={"enum": _words(FindingStatus)})
    priority = fields.String(metadata={"enum": _words(Priority)})
    results = fields.List(fields.Nested(JudgedResultOut))
    findings = fields.List(fields.Nested(FindingOut))
    red_flags = fields.List(fields.Nested(RedFlagOut))
    contributing_factors = fields.List(fields.Nested(ContributingFactorOut))
    follow_up = fields.List(fields.Nested(FollowUpOut))
    notes = fields.List(fields.Nested(NoteOut))
    summary = fields.String()


class PatientOut(_Out):
    id = fields.String()
    sex = fields.String(metadata={"enum": ["female", "male", "unknown"]})
    birth_date = fields.Date(allow_none=True)
    age_years = fields.Integer(allow_none=True)


class SpecimenOut(_Out):
    type = fields.String(allow_none=True)
    hemolyzed = fields.Boolean()


class PanelResultOut(_Out):
    analyte = fields.String()
    loinc = fields.String(allow_none=True)
    reported = fields.Nested(QuantityOut, metadata={"description": "as the clinic sent it"})
    value = fields.Decimal(as_string=False, metadata={"description": "in the canonical unit"})
    unit = fields.String()
    reference_range = fields.Nested(
        LabRangeOut, allow_none=True, metadata={"description": "the laboratory's own range"}
    )
    sender_flag = fields.String(
        allow_none=True,
        metadata={
            "description": "the sending laboratory's own flag, verbatim (ours is in the "
            "interpretation's results)"
        },
    )


class TwitchingOut(_Out):
    sites = fields.List(fields.String())
    duration_days = fields.Integer(allow_none=True)
    frequency = fields.String(allow_none=True)


class ContextOut(_Out):
    twitching = fields.Nested(TwitchingOut, allow_none=True)
    symptoms = fields.List(fields.String())
    factors = fields.List(fields.String())
    medications = fields.List(fields.String())
    notes = fields.String(allow_none=True, metadata={"description": "free text, verbatim"})


class PanelOut(_Out):
    id = fields.UUID()
    accession = fields.String()
    clinic = fields.String()
    patient = fields.Nested(PatientOut)
    collected_at = UtcDateTime()
    specimen = fields.Nested(SpecimenOut)
    revision = fields.Integer()
    status = fields.String(
        metadata={
            "enum": [*_words(PanelStatus), "superseded"],
            "description": "processing status; superseded: an earlier revision replaced by a "
            "correction before it was interpreted (only with ?revision=N)",
        }
    )
    review_status = fields.String(
        allow_none=True,
        metadata={
            "enum": _words(ReviewStatus),
            "description": "in the review queue: pending, or reviewed against what the newest "
            "interpretation says; null: not in the queue (normal, or not interpreted yet)",
        },
    )
    failure_code = fields.String(
        allow_none=True,
        metadata={
            "enum": [c.value for c in FailureCode],
            "description": "why interpretation failed (status failed), else null",
        },
    )
    failure = fields.String(
        allow_none=True,
        metadata={"description": "what failed and what to do, for a clinician to read"},
    )
    results = fields.List(fields.Nested(PanelResultOut))
    context = fields.Nested(ContextOut, allow_none=True)
    interpretation = fields.Nested(InterpretationOut, allow_none=True)
    reviews = fields.List(fields.Nested(ReviewOut), metadata={"description": "newest first"})
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class TrendPointOut(_Out):
    panel_id = fields.UUID()
    accession = fields.String()
    clinic = fields.String()
    collected_at = UtcDateTime()
    value = fields.Decimal(as_string=False, metadata={"description": "in the canonical unit"})
    unit = fields.String()
    reported = fields.Nested(QuantityOut)
    interpretation = fields.String(allow_none=True, metadata={"enum": RESULT_FLAGS})
    critical = fields.Boolean()
    reference_range = fields.Nested(IntervalOut, allow_none=True)
    ruleset = fields.String(allow_none=True)


PanelPage = page_schema(PanelOut, "PanelPage")
InterpretationPage = page_schema(InterpretationOut, "InterpretationPage")
TrendPage = page_schema(TrendPointOut, "TrendPage")


class HealthOut(_Out):
    status = fields.String(metadata={"enum": ["ok"]})


class CheckOut(_Out):
    ok = fields.Boolean()
    detail = fields.String()


class ReadyOut(_Out):
    status = fields.String(metadata={"enum": ["ready"]})
    checks = fields.Dict(keys=fields.String(), values=fields.Nested(CheckOut))


class RulesetOut(_Out):
    version = fields.String()
    title = fields.String()
    published = fields.String(metadata={"format": "date"})
    description = fields.String()
    sources = fields.List(fields.Raw())
    analytes = fields.List(
        fields.Raw(), metadata={"description": "key, units accepted, LOINC codes, accepted range"}
    )
    refused_loinc = fields.List(fields.Raw())
    vocabularies = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "the context codes accepted: symptoms, factors, medications"},
    )
    active = fields.Boolean()


RulesetPage = page_schema(
    RulesetOut,
    "RulesetPage",
    active=fields.String(metadata={"description": "the version new panels are interpreted with"}),
)


def dump_new_panel(view: Any) -> dict[str, Any] | None:
    """``PanelOut().dump(view)`` for a panel just stored (a ``reading.PanelView`` with no
    interpretation and no reviews), written out field by field: the answer to every new
    panel, where marshmallow's dump was a tenth of the request's CPU. None for any other
    view (dump it with ``PanelOut``). tests/api/test_fast_panel_dump.py holds the two equal."""
    if view.interpretation is not None or view.reviews:
        return None
    patient, specimen, context = view.patient, view.specimen, view.context
    return {
        "id": str(view.id),
        "accession": view.accession,
        "clinic": view.clinic,
        "patient": {
            "id": patient.id,
            "sex": patient.sex,
            "birth_date": None if patient.birth_date is None else patient.birth_date.isoformat(),
            "age_years": None if patient.age_years is None else int(patient.age_years),
        },
        "collected_at": _utc_text(view.collected_at),
        "specimen": {"type": specimen.type, "hemolyzed": bool(specimen.hemolyzed)},
        "revision": int(view.revision),
        "status": view.status,
        "review_status": view.review_status,
        "failure_code": view.failure_code,
        "failure": view.failure,
        "results": [
            {
                "analyte": r.analyte,
                "loinc": r.loinc,
                "reported": {"value": _number(r.reported.value), "unit": r.reported.unit},
                "value": _number(r.value),
                "unit": r.unit,
                "reference_range": None
                if r.reference_range is None
                else {
                    "low": _number(r.reference_range.low),
                    "high": _number(r.reference_range.high),
                    "unit": r.reference_range.unit,
                    "source": r.reference_range.source,
                    "text": r.reference_range.text,
                },
                "sender_flag": r.sender_flag,
            }
            for r in view.results
        ],
        "context": None
        if context is None
        else {
            "twitching": None
            if context.twitching is None
            else {
                "sites": list(context.twitching.sites),
                "duration_days": None
                if context.twitching.duration_days is None
                else int(context.twitching.duration_days),
                "frequency": context.twitching.frequency,
            },
            "symptoms": list(context.symptoms),
            "factors": list(context.factors),
            "medications": list(context.medications),
            "notes": context.notes,
        },
        "interpretation": None,
        "reviews": [],
        "created_at": _utc_text(view.created_at),
        "updated_at": _utc_text(view.updated_at),
    }


def _number(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _utc_text(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
