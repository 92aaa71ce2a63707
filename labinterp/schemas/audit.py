"""The audit trail's shapes: the query and an event, each defined once, to parse or serialise
and to document."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from labinterp.schemas.common import PageQuery, page_schema
from labinterp.schemas.fields import Text, UtcDateTime


class AuditQuery(PageQuery):
    class Meta:
        unknown = EXCLUDE

    panel_id = fields.UUID(
        metadata={
            "description": "events about this panel: a read or change of it, and every list, "
            "trend or queue read whose page named it"
        }
    )
    actor = Text(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "exactly as recorded, e.g. `user:ada@example.org`"},
    )
    action = fields.List(
        fields.String(validate=validate.Length(min=1, max=60)),
        metadata={"description": "e.g. `panel.read`; repeat it for any of several"},
    )
    since = UtcDateTime(
        data_key="from", metadata={"description": "inclusive; a date alone means its start"}
    )
    until = UtcDateTime(
        data_key="to",
        end_of_day=True,
        metadata={"description": "inclusive; a date alone means its end"},
    )

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and since > until:
            raise ValidationError("must not be before `from`", "to")


class AuditEventOut(Schema):
    class Meta:
        ordered = True

    id = fields.Integer(metadata={"description": "increasing in the order events were written"})
    at = UtcDateTime()
    actor = fields.String(
        metadata={
            "description": "who: `user:<email>`, `token:<prefix>…(<name>)`, `cli:<os user>`, "
            "`system`"
        }
    )
    role = fields.String(metadata={"description": "clinic, clinician, admin, system, anonymous"})
    action = fields.String(metadata={"description": "what, e.g. panel.read, review.create"})
    clinic_id = fields.UUID(allow_none=True)
    panel_id = fields.UUID(allow_none=True, metadata={"description": "the one panel acted on"})
    panel_ids = fields.List(
        fields.UUID(),
        metadata={"description": "the panels a read of several named (one event per request)"},
    )
    address = fields.String(allow_none=True, metadata={"description": "from where: the IP"})
    token_id = fields.UUID(allow_none=True, metadata={"description": "the API token used"})
    detail = fields.Dict(allow_none=True, metadata={"description": "what else, by action"})


AuditPage = page_schema(AuditEventOut, "AuditPage")
