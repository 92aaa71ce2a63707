"""Review shapes: the queue item, a review posted and as shown. Each defined once, used to
serialise and to document."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from labinterp.domain import FindingStatus, Priority
from labinterp.models import AlertStatus, Decision, ReviewStatus
from labinterp.schemas.common import PageQuery, page_schema
from labinterp.schemas.fields import Text, UtcDateTime
from labinterp.services.review import QUEUE_STATUSES

NOTE_LIMIT = 4000


def _words(enum: type[object]) -> list[str]:
    return [str(member) for member in enum]  # type: ignore[attr-defined]


class _Out(Schema):
    class Meta:
        ordered = True


class QueueQuery(PageQuery):
    class Meta:
        unknown = EXCLUDE

    status = fields.String(
        load_default=ReviewStatus.PENDING.value,
        validate=validate.OneOf(QUEUE_STATUSES),
        metadata={"description": "pending (default), reviewed, or all"},
    )
    priority = fields.List(
        fields.String(validate=validate.OneOf(_words(Priority))),
        metadata={"description": "critical, urgent or routine; repeat it for several"},
    )
    flag = fields.List(
        fields.String(),
        metadata={
            "description": "a finding or red-flag code, or a result flag (L, LL, H, HH, IND); "
            "repeat it for any of several"
        },
    )
    clinic = Text(metadata={"description": "one of the clinician's clinics, by name"})
    alert = fields.String(
        validate=validate.OneOf(["undelivered"]),
        metadata={
            "description": "undelivered: only critical panels whose alert to the clinic's "
            "webhook has not been delivered (pending, or given up)"
        },
    )


class AlertOut(_Out):
    status = fields.String(metadata={"enum": _words(AlertStatus)})
    delivered = fields.Boolean()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)


class QueueItemOut(_Out):
    panel_id = fields.UUID()
    accession = fields.String()
    clinic = fields.String()
    patient_id = fields.String()
    collected_at = UtcDateTime()
    priority = fields.String(metadata={"enum": _words(Priority)})
    status = fields.String(
        metadata={"enum": _words(FindingStatus), "description": "what the interpretation found"}
    )
    review_status = fields.String(metadata={"enum": _words(ReviewStatus)})
    reviewed_at = UtcDateTime(allow_none=True)
    finding_codes = fields.List(fields.String())
    red_flag_codes = fields.List(fields.String())
    interpretation_id = fields.UUID(
        metadata={"description": "the interpretation a review of this item signs off"}
    )
    alert = fields.Nested(
        AlertOut,
        allow_none=True,
        metadata={"description": "the critical-value alert to the clinic's webhook, if any"},
    )
    alert_undelivered = fields.Boolean(
        metadata={"description": "a critical-value alert that has not reached the clinic"}
    )


QueuePageOut = page_schema(QueueItemOut, "ReviewQueuePage")


class ReviewIn(Schema):
    class Meta:
        unknown = EXCLUDE

    decision = fields.String(required=True, validate=validate.OneOf(_words(Decision)))
    note = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=NOTE_LIMIT),
        metadata={"description": "required for follow_up or dismissed on a critical panel"},
    )
    interpretation_id = fields.UUID(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "the interpretation the clinician read; 409 if a newer one replaced "
            "it meanwhile"
        },
    )


class ReviewOut(_Out):
    id = fields.UUID()
    panel_id = fields.UUID()
    interpretation_id = fields.UUID()
    reviewer = fields.String()
    decision = fields.String(metadata={"enum": _words(Decision)})
    note = fields.String(allow_none=True)
    created_at = UtcDateTime()


ReviewPage = page_schema(ReviewOut, "ReviewPage")
