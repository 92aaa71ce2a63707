"""FHIR R4 reading: a panel's interpretation as a DiagnosticReport, and the server's
CapabilityStatement.

The same roles and clinic rules as ``GET /api/v1/panels/{id}`` (the panel is read through
``reading.read_panel``, audited the same way); every error, the gate's 401 and 403 too, is an
OperationOutcome (``application/fhir+json``) with the status the JSON API would answer.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException

from labinterp.api.auth import current_actor, roles
from labinterp.api.problems import Problem, database_unavailable
from labinterp.api.session import db, runtime
from labinterp.domain import Ruleset
from labinterp.interop import fhir_out
from labinterp.redaction import describe_exception
from labinterp.services import reading
from labinterp.services.errors import NotFound

log = logging.getLogger(__name__)
blp = Blueprint("fhir_read", __name__, url_prefix="/fhir/r4")
_ONE_METABOLITE = re.compile(r"\bD[23] \[")  # "25-Hydroxyvitamin D3 [Moles/volume]"
READERS = ("clinic", "clinician", "admin")

# HTTP status -> FHIR issue type (http://hl7.org/fhir/issue-type)
_ISSUE = {
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    422: "invalid",
    429: "throttled",
    503: "transient",
}


def fhir_response(resource: dict[str, Any], status: int = 200) -> Response:
    body = fhir_out.validated(resource)
    return current_app.response_class(body, status=status, mimetype=fhir_out.FHIR_JSON)


def _outcome(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    outcome = fhir_out.operation_outcome(status, detail, _ISSUE.get(status, "exception"))
    response = fhir_response(outcome, status)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


@blp.errorhandler(Problem)
def _problem(problem: Problem) -> Response:
    return _outcome(problem.status, problem.detail, problem.headers)


@blp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Response:
    return _outcome(404, f"{exc.what} not found")


@blp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Response:
    return _outcome(exc.code or 500, exc.description or "error")


@blp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    # the exception's type and where it was raised, never its message (problems.py)
    route = request.url_rule.rule if request.url_rule is not None else "(no route)"
    log.error("unhandled error on %s %s: %s", request.method, route, describe_exception(exc))
    if database_unavailable(exc):
        return _outcome(
            503, "the database is unreachable; retry later", headers={"Retry-After": "5"}
        )
    return _outcome(500, "an unexpected error occurred; it has been logged")


def loinc_codes(ruleset: Ruleset | None) -> dict[str, tuple[str, str]]:
    """Analyte -> the ruleset's LOINC code (and name) for a result sent without one: the first
    listed for the kind of the canonical unit (the value the Observation carries), never one
    of a derived result (albumin-corrected calcium) or of one metabolite alone (25-OH vitamin
    D3 without D2); else the first listed."""
    if ruleset is None:
        return {}
    out: dict[str, tuple[str, str]] = {}
    for key, analyte in ruleset.analytes.items():
        canonical = next(iter(analyte.units.values()), None)
        usable = [c for c in analyte.loinc if not c.corrected]
        whole = [c for c in usable if not _ONE_METABOLITE.search(c.name)]
        same_kind = [c for c in whole if canonical and c.dimension == canonical.dimension]
        for chosen in (same_kind or whole or usable)[:1]:
            out[key] = (chosen.code, chosen.name)
    return out


@blp.get("/DiagnosticReport/<uuid:panel_id>")
@roles(*READERS)
def diagnostic_report(panel_id: uuid.UUID) -> Response:
    """A panel and its newest interpretation as a FHIR R4 DiagnosticReport"""
    rt = runtime()
    view = reading.read_panel(db(), current_actor(), rt.rulesets, panel_id)
    version = view.interpretation.ruleset if view.interpretation else None
    ruleset = rt.rulesets.get(version or rt.settings.default_ruleset)
    return fhir_response(fhir_out.diagnostic_report(view, loinc_codes(ruleset)))


@blp.get("/metadata")
def metadata() -> Response:
    """The server's CapabilityStatement (public, as FHIR expects)"""
    return fhir_response(
        fhir_out.capability_statement(request.url_root + "fhir/r4", dt.datetime.now(dt.UTC))
    )


def document_fhir_reads(paths: dict[str, Any]) -> None:
    """Put this blueprint's two routes into /openapi.json (``paths``: apispec's own dict,
    before ``finish_spec``). A plain blueprint, not flask-smorest's, since every answer of it,
    errors too, is a FHIR resource: each error is documented with the JSON API's status and
    headers, and an OperationOutcome for its body."""

    def outcome(description: str, header: str | None = None) -> dict[str, Any]:
        documented: dict[str, Any] = {
            "description": description,
            "content": {
                fhir_out.FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcomeOut"}}
            },
        }
        if header is not None:
            name = header.upper().replace("-", "_")
            documented["headers"] = {header: {"$ref": f"#/components/headers/{name}"}}
        return documented

    def resource(kind: str, description: str) -> dict[str, Any]:
        schema = {
            "type": "object",
            "required": ["resourceType"],
            "properties": {"resourceType": {"type": "string", "enum": [kind]}},
        }
        return {"description": description, "content": {fhir_out.FHIR_JSON: {"schema": schema}}}

    paths["/fhir/r4/DiagnosticReport/{panel_id}"] = {
        "get": {
            "summary": "A panel and its newest interpretation as a FHIR R4 DiagnosticReport",
            "description": "The same roles and clinic rules as GET /api/v1/panels/{panel_id}; "
            "its Observations are contained, one per result.",
            "tags": ["fhir"],
            "parameters": [
                {
                    "in": "path",
                    "name": "panel_id",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                }
            ],
            "security": [{"bearer": []}],
            "x-roles": sorted(READERS),
            "responses": {
                "200": resource("DiagnosticReport", "The panel as a DiagnosticReport"),
                "401": outcome(
                    "No API token, a malformed Authorization header, or an unknown or revoked "
                    "token",
                    "WWW-Authenticate",
                ),
                "403": outcome("The token's role may not read panels"),
                "404": outcome("No such panel among those the token may read"),
                "429": outcome(
                    "The token's request budget for this minute is spent", "Retry-After"
                ),
            },
        }
    }
    paths["/fhir/r4/metadata"] = {
        "get": {
            "summary": "The server's CapabilityStatement (public, as FHIR expects)",
            "tags": ["fhir"],
            "security": [],
            "responses": {"200": resource("CapabilityStatement", "What this server supports")},
        }
    }
