"""Response shapes of the interoperability endpoints (FHIR in)."""

from __future__ import annotations

from marshmallow import Schema, fields


class _Out(Schema):
    class Meta:
        ordered = True


class NotInterpretedOut(_Out):
    """Something the sender's document held that was kept with the panel but not judged."""

    path = fields.String(
        metadata={"description": "where, in the sender's terms (a FHIRPath, an HL7 v2 field)"}
    )
    code = fields.String(metadata={"description": "its code as sent (LOINC, or system|code)"})
    display = fields.String()
    reason = fields.String(metadata={"description": "why it was not judged"})


class IssueOut(_Out):
    severity = fields.String(metadata={"enum": ["error", "warning", "information"]})
    code = fields.String(metadata={"description": "FHIR IssueType"})
    diagnostics = fields.String()
    expression = fields.List(fields.String(), metadata={"description": "FHIRPath"})


class BundleAcceptedOut(_Out):
    """What a posted Bundle became: the panel (201 new, 200 the same content again)."""

    id = fields.UUID(metadata={"description": "the panel's id (Location: /api/v1/panels/{id})"})
    accession = fields.String()
    status = fields.String(
        metadata={"enum": ["queued", "repeat"], "description": "repeat: already stored"}
    )
    location = fields.String()
    not_interpreted = fields.List(
        fields.Nested(NotInterpretedOut),
        metadata={"description": "Observations (and parts) kept but not judged, with why"},
    )
    warnings = fields.List(
        fields.Nested(IssueOut),
        metadata={"description": "OperationOutcome issues that did not stop the panel"},
    )


class OperationOutcomeOut(_Out):
    """An R4 OperationOutcome: one issue per problem, its expression the FHIRPath."""

    resourceType = fields.String(metadata={"enum": ["OperationOutcome"]})
    issue = fields.List(fields.Nested(IssueOut))
