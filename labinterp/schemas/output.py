"""Response shapes (for serialisation and the OpenAPI document)."""

from __future__ import annotations

from marshmallow import Schema, fields

from labinterp.models import FailureCode
from labinterp.schemas.common import page_schema
from labinterp.schemas.fields import UtcDateTime


class _Out(Schema):
    class Meta:
        ordered = True


class InterpretationOut(_Out):
    id = fields.UUID()
    panel_id = fields.UUID()
    revision = fields.Integer()
    ruleset = fields.String()
    created_at = UtcDateTime()
    status = fields.String(metadata={"enum": ["flagged", "indeterminate", "normal"]})
    priority = fields.String(metadata={"enum": ["critical", "urgent", "routine"]})
    results = fields.List(fields.Raw())
    findings = fields.List(fields.Raw())
    red_flags = fields.List(fields.Raw())
    contributing_factors = fields.List(fields.Raw())
    follow_up = fields.List(fields.Raw())
    notes = fields.List(fields.Raw())
    summary = fields.String()


class PanelOut(_Out):
    id = fields.UUID()
    accession = fields.String()
    clinic = fields.String()
    patient = fields.Raw()
    collected_at = UtcDateTime()
    specimen = fields.Raw()
    revision = fields.Integer()
    status = fields.String(
        metadata={
            "enum": ["queued", "interpreted", "failed", "superseded"],
            "description": "processing status; superseded: an earlier revision replaced by a "
            "correction before it was interpreted (only with ?revision=N)",
        }
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
    results = fields.List(fields.Raw())
    context = fields.Raw(allow_none=True)
    interpretation = fields.Nested(InterpretationOut, allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class TrendPointOut(_Out):
    panel_id = fields.UUID()
    accession = fields.String()
    clinic = fields.String()
    collected_at = UtcDateTime()
    value = fields.Raw()
    unit = fields.String()
    reported = fields.Raw()
    interpretation = fields.String(allow_none=True)
    reference_range = fields.Raw(allow_none=True)
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
