"""Re-processing job shapes (API.md "Rulesets and reprocessing"): the request, the job with
its progress and summary. Each defined once, used to serialise and to document."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate

from labinterp.models import JobStatus
from labinterp.schemas.common import page_schema
from labinterp.schemas.fields import Text, UtcDateTime


class _Out(Schema):
    class Meta:
        ordered = True


class JobFilterIn(Schema):
    class Meta:
        unknown = EXCLUDE

    clinic = Text(metadata={"description": "only this clinic's panels, by name"})
    collected_from = UtcDateTime(metadata={"description": "a date alone means its start"})
    collected_to = UtcDateTime(
        end_of_day=True, metadata={"description": "inclusive; a date alone means its end"}
    )


class JobIn(Schema):
    """A job: interpret the stored panels again under ``ruleset`` (or, with ``dry_run``, only
    count what would change)."""

    ruleset = fields.String(
        required=True,
        validate=validate.Length(min=1, max=20),
        metadata={"description": "a ruleset version, as GET /api/v1/rulesets lists them"},
    )
    dry_run = fields.Boolean(
        load_default=False,
        metadata={"description": "count what would change and write no interpretation"},
    )
    filter = fields.Nested(JobFilterIn, load_default=dict)


class JobFilterOut(_Out):
    clinic = fields.String(allow_none=True)
    collected_from = fields.String(allow_none=True)
    collected_to = fields.String(allow_none=True)


class CodeChangeOut(_Out):
    gained = fields.Integer(metadata={"description": "panels that gain this finding code"})
    lost = fields.Integer(metadata={"description": "panels that lose it"})


class FailureOut(_Out):
    panel_id = fields.String()
    reason = fields.String()


class SamplesOut(_Out):
    changed = fields.List(fields.String())
    newly_flagged = fields.List(fields.String())
    cleared = fields.List(fields.String())
    severity_changed = fields.List(fields.String())
    priority_changed = fields.List(fields.String())


class SummaryOut(_Out):
    newly_flagged = fields.Integer(metadata={"description": "panels going from normal to flagged"})
    cleared = fields.Integer(metadata={"description": "panels going from flagged to normal"})
    severity_changed = fields.Integer(
        metadata={
            "description": "panels where a finding kept its code but not its grade or severity"
        }
    )
    priority_changed = fields.Integer()
    by_code = fields.Dict(keys=fields.String(), values=fields.Nested(CodeChangeOut))
    samples = fields.Nested(SamplesOut, metadata={"description": "a few panel ids of each kind"})
    failures = fields.List(
        fields.Nested(FailureOut),
        metadata={"description": "the first failed panels, each with why"},
    )


class JobOut(_Out):
    id = fields.UUID()
    ruleset = fields.String()
    dry_run = fields.Boolean()
    status = fields.String(metadata={"enum": [s.value for s in JobStatus]})
    filter = fields.Method("_filter", metadata={"type": "object"})
    total = fields.Integer(metadata={"description": "panels the job covers"})
    processed = fields.Integer()
    changed = fields.Integer(
        metadata={
            "description": "panels whose finding codes, a finding's grade or severity, or "
            "priority differ from their newest interpretation"
        }
    )
    failed = fields.Integer(metadata={"description": "panels the engine could not judge"})
    summary = fields.Nested(SummaryOut)
    error = fields.String(allow_none=True, metadata={"description": "why the job failed"})
    created_at = UtcDateTime()
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)
    created_by = fields.String(allow_none=True)

    def _filter(self, job: Any) -> dict[str, Any]:
        stored = job.filter or {}
        return {key: stored.get(key) for key in ("clinic", "collected_from", "collected_to")}


JobPageOut = page_schema(JobOut, "ReprocessingJobPage")
