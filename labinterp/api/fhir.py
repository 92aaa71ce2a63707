"""FHIR R4 in: ``POST /fhir/r4/Bundle`` takes a lab report Bundle as a panel (API.md
"Interoperability"). Errors are OperationOutcomes whose issues name FHIRPaths."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app, request
from flask.views import MethodView

from labinterp.api.auth import current_actor, roles
from labinterp.api.panels import _active_ruleset, _clinic_of_poster
from labinterp.api.parsing import Blueprint, read_body
from labinterp.api.session import runtime
from labinterp.interop import fhir_in
from labinterp.interop.fhir_document import FhirRefused, Issue, outcome
from labinterp.schemas.interop import BundleAcceptedOut, OperationOutcomeOut
from labinterp.services.errors import AccessionConflict, InvalidInput

FHIR_JSON = "application/fhir+json"

blp = Blueprint(
    "fhir",
    __name__,
    url_prefix="/fhir/r4",
    description="FHIR R4: post a lab report Bundle (Patient, LOINC-coded Observations, an "
    "optional DiagnosticReport) as a panel.",
)


def _fhir_response(body: dict[str, Any], status: int, headers: dict[str, str] | None = None):
    text = current_app.json.dumps(body).encode("utf-8", "backslashreplace")
    response = current_app.response_class(text, status=status, mimetype=FHIR_JSON)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _refused(status: int, issues: list[Issue]):
    return _fhir_response(outcome(issues), status)


@blp.route("/Bundle")
class BundleIntake(MethodView):
    @roles("clinic")
    @blp.doc(
        requestBody={
            "required": True,
            "description": "A FHIR R4 Bundle (collection, transaction, batch or document) "
            "with a Patient, LOINC-coded Observations with valueQuantity and optionally a "
            "DiagnosticReport; API.md 'Interoperability' says where each panel field comes "
            "from. 400 (not a Bundle) and 422 answer an OperationOutcome naming FHIRPaths.",
            "content": {FHIR_JSON: {"schema": {"type": "object"}}},
        }
    )
    @blp.response(201, BundleAcceptedOut, description="A new panel, queued for interpretation")
    @blp.alt_response(
        200, schema=BundleAcceptedOut, description="The same accession and content again"
    )
    @blp.alt_response(
        400,
        schema=OperationOutcomeOut,
        content_type=FHIR_JSON,
        description="Not JSON, or not a FHIR Bundle (nor a DiagnosticReport or Observation)",
    )
    @blp.alt_response(
        422,
        schema=OperationOutcomeOut,
        content_type=FHIR_JSON,
        description="No panel in it: each issue names the FHIRPath of a problem",
    )
    @blp.alt_response(
        409,
        schema=OperationOutcomeOut,
        content_type=FHIR_JSON,
        description="The accession was posted before with other content",
    )
    def post(self) -> Any:
        """Post a FHIR R4 Bundle as a panel"""
        body = read_body(request, accepted=(FHIR_JSON, "application/json"))
        try:
            submitted = fhir_in.submit_bundle(
                runtime().engine,
                current_actor(),
                _clinic_of_poster(),
                body,
                _active_ruleset(),
                dt.datetime.now(dt.UTC),
            )
        except FhirRefused as exc:
            return _refused(exc.status, exc.issues)
        except InvalidInput as exc:
            return _refused(
                422,
                [Issue(path, " ".join(messages)) for path, messages in exc.errors.items()],
            )
        except AccessionConflict as exc:
            return _refused(
                409,
                [
                    Issue(
                        "Bundle",
                        f"{exc} (panel {exc.panel_id})",
                        code="conflict",
                    )
                ],
            )
        location = f"/api/v1/panels/{submitted.panel_id}"
        document = {
            "id": submitted.panel_id,
            "accession": submitted.accession,
            "status": "queued" if submitted.created else "repeat",
            "location": location,
            "not_interpreted": submitted.not_interpreted,
            "warnings": [w.to_fhir() for w in submitted.warnings],
        }
        return document, 201 if submitted.created else 200, {"Location": location}
