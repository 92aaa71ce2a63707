"""What /openapi.json says about errors and auth, made to match what the API does.

* Every error is an RFC 9457 ``application/problem+json`` document (problems.py), not
  flask-smorest's ``{code, status, message, errors}``: ``LabApi`` registers its per-status
  responses (``UNAUTHORIZED``, ``UNPROCESSABLE_ENTITY`` …) and ``DEFAULT_ERROR`` that way.
* ``roles(...)`` (auth.py) attaches the bearer requirement and its 401/403/429 through
  :func:`document_roles`; ``finish_spec`` then adds what follows from the route itself
  (404 on a path with an id, 413/415 on any body and 400/422 on a JSON one, ``security: []``
  on every operation without ``roles``) and the facts marshmallow cannot express
  (``SPEC_REQUIRED``).
"""

from __future__ import annotations

import http
import re
from collections.abc import Callable, Iterable
from copy import deepcopy
from typing import Any

import flask
from flask_smorest import Api
from flask_smorest.utils import deepupdate

from labinterp.api.problems import PROBLEM_MIMETYPE

# Field metadata key: the field is required in the OpenAPI document (and not nullable) although
# marshmallow loads it as optional, because the acceptance rules refuse it missing or null with
# their own messages (labinterp/domain/acceptance.py).
SPEC_REQUIRED = "spec_required"

_METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")
_STATUS = {code: http.HTTPStatus(code).name for code in (400, 401, 403, 404, 413, 415, 422, 429)}
ACCESSION_CONFLICT = "ACCESSION_CONFLICT"
STATE_CONFLICT = "STATE_CONFLICT"
NOT_READY = "NOT_READY"

# Operations with answers their route does not imply: posting a panel can meet the same
# accession with other content (409 with the existing panel's id).
_SPECIFIC: dict[tuple[str, str], dict[int, str]] = {
    ("post", "/api/v1/panels"): {409: ACCESSION_CONFLICT},
    ("post", "/api/v1/panels/{panel_id}/revisions"): {409: ACCESSION_CONFLICT},
    ("post", "/api/v1/panels/{panel_id}/reviews"): {409: STATE_CONFLICT},
}


def _problem(
    description: str,
    properties: dict[str, Any] | None = None,
    required: Iterable[str] = (),
) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": {
            "type": {
                "type": "string",
                "format": "uri-reference",
                "description": "identifies the kind of problem",
                "example": "urn:labinterp:problem:invalid-input",
            },
            "title": {"type": "string", "description": "the status code's phrase"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string", "description": "what went wrong, for a person"},
            **(properties or {}),
        },
        "required": ["type", "title", "status", "detail", *required],
        "additionalProperties": True,
    }


_ERRORS = {
    "type": "object",
    "description": (
        "request field path (indexes from 0, e.g. results.1.unit; body for the whole body) "
        "-> what is wrong with it"
    ),
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
    "example": {"results.1.unit": ["unit is required; use mmol/L or mEq/L"]},
}
_CHECK = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "detail": {"type": "string"}},
    "required": ["ok", "detail"],
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": _problem("An RFC 9457 problem document (application/problem+json)."),
    "ValidationProblem": _problem(
        "A problem document naming the invalid fields: every field of the wrong type or "
        "shape; once the shape is right, every field the clinical acceptance rules refuse.",
        {"errors": _ERRORS},
        ["errors"],
    ),
    "AccessionConflictProblem": _problem(
        "The accession is already stored with other content.",
        {
            "panel_id": {"type": "string", "format": "uuid", "description": "the stored panel"},
            "differences": {
                "type": "array",
                "items": {"type": "string"},
                "description": "where the content differs from the stored revision, e.g. "
                "collected_at, results[magnesium].value",
            },
        },
        ["panel_id"],
    ),
    "NotReadyProblem": _problem(
        "The database or the broker is unreachable; each is reported separately.",
        {
            "checks": {
                "type": "object",
                "properties": {"database": _CHECK, "broker": _CHECK},
                "required": ["database", "broker"],
            }
        },
        ["checks"],
    ),
}
HEADERS: dict[str, dict[str, Any]] = {
    "RETRY_AFTER": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWW_AUTHENTICATE": {
        "description": "the bearer challenge",
        "schema": {"type": "string", "example": 'Bearer realm="labinterp"'},
    },
}
_DESCRIPTIONS = {
    400: "The body is not valid JSON",
    401: "No API token, a malformed Authorization header, or an unknown or revoked token",
    403: "The token's role may not do this",
    404: "Not found (or not visible to this token)",
    413: "The body is larger than the configured limit",
    415: "The Content-Type is not JSON",
    422: "Well-formed but not valid; errors names the invalid fields (shape first, then rules)",
    429: "The token's request budget for this minute is spent",
}


def _content(schema: str) -> dict[str, Any]:
    return {PROBLEM_MIMETYPE: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


class LabApi(Api):
    """flask-smorest's Api whose error responses are problem documents."""

    def _openapi_swagger_ui(self) -> str:
        """/docs without flask-smorest's inline script, which the page's Content-Security-
        Policy refuses: Swagger UI is started by a script file of its own (web/static)."""
        return flask.render_template(
            "docs.html",
            title=self.spec.title,
            spec_url=flask.url_for(f"{self._make_doc_blueprint_name()}.openapi_json"),
            swagger_ui_url=self._swagger_ui_url,
            swagger_ui_config=self.config.get("OPENAPI_SWAGGER_UI_CONFIG", {}),
        )

    def _register_responses(self) -> None:
        components = self.spec.components
        for name, schema in SCHEMAS.items():
            components.schema(name, schema)
        for name, header in HEADERS.items():
            components.header(name, header)
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": _DESCRIPTIONS.get(status, status.phrase)}
            if status >= 400:
                response["content"] = _content("ValidationProblem" if status == 422 else "Problem")
            if status in (401,):
                response["headers"] = {"WWW-Authenticate": "WWW_AUTHENTICATE"}
            if status in (429, 503):
                response["headers"] = {"Retry-After": "RETRY_AFTER"}
            components.response(status.name, response, lazy=True)
        components.response(
            self.DEFAULT_ERROR_RESPONSE_NAME,
            {"description": "Any other error (500, 503 …)", "content": _content("Problem")},
            lazy=True,
        )
        components.response(
            ACCESSION_CONFLICT,
            {
                "description": "The accession is already stored with other content",
                "content": _content("AccessionConflictProblem"),
            },
            lazy=True,
        )
        components.response(
            STATE_CONFLICT,
            {
                "description": "Not possible in the present state: the panel is not interpreted "
                "yet, or was re-interpreted since the caller read it (its newest "
                "interpretation_id and when are in the body)",
                "content": _content("Problem"),
            },
            lazy=True,
        )
        components.response(
            NOT_READY,
            {
                "description": "The database or the broker is unreachable",
                "content": _content("NotReadyProblem"),
                "headers": {"Retry-After": "RETRY_AFTER"},
            },
            lazy=True,
        )


def document_roles(view: Callable[..., Any], allowed: Iterable[str]) -> None:
    """Attach to a ``roles(...)`` view what flask-smorest documents: bearer token, 401/403/429."""
    apidoc = deepcopy(getattr(view, "_apidoc", {}))
    apidoc["manual_doc"] = deepupdate(
        apidoc.get("manual_doc", {}),
        {
            "security": [{"bearer": []}],
            "x-roles": list(allowed),
            "responses": {code: _STATUS[code] for code in (401, 403, 429)},
        },
    )
    view._apidoc = apidoc  # type: ignore[attr-defined]


def _takes_json(body: dict[str, Any]) -> bool:
    """Whether a documented request body is JSON (a ``$ref`` or a JSON media type): only a JSON
    body can be answered 400 (not JSON) and 422 (not valid). An HL7 v2 message's problems are
    in its ACK, with HTTP 200."""
    content = body.get("content")
    if not isinstance(content, dict):
        return True  # a referenced body: the API's own JSON schemas
    return any(
        kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))
        for kind in content
    )


def finish_spec(api: Api) -> None:
    """After every blueprint is registered: what follows from routes, bodies and metadata."""
    components = api.spec.components
    paths: dict[str, dict[str, Any]] = api.spec.to_dict()["paths"]  # apispec's own dict

    def ref(name: str) -> dict[str, Any]:
        return dict(components.get_ref("response", name))

    for method, path in _SPECIFIC:
        if method not in paths.get(path, {}):
            raise LookupError(f"openapi: {method.upper()} {path} is not a route any more")
    for path, item in paths.items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            codes: list[int] = []
            if re.search(r"\{[^}]+\}", path):
                codes.append(404)
            if "requestBody" in operation:
                codes += [413, 415]  # any body: its size, then its type
                if _takes_json(operation["requestBody"]):
                    codes += [400, 422]  # a JSON body: its syntax, then its content
            for code in codes:
                responses.setdefault(str(code), ref(_STATUS[code]))
            for code, name in _SPECIFIC.get((method, path), {}).items():
                responses.setdefault(str(code), ref(name))
            operation.setdefault("security", [])  # no roles(...): it answers without a token
    paths["/openapi.json"] = {
        "get": {
            "summary": "This OpenAPI document",
            "tags": ["operations"],
            "security": [],
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {}}}}
            },
        }
    }
    _spec_required(api)
    _document_codes(paths)


def _document_codes(paths: dict[str, dict[str, Any]]) -> None:
    """The codes the query parameters accept come from the rulesets loaded, not from Python:
    ``flag`` of the panel list and ``analyte`` of the trend, as enums."""
    from labinterp.api.panels import analyte_keys, flag_codes  # panels imports this module
    from labinterp.runtime import get_runtime  # the app's, installed by create_app

    rulesets = get_runtime().rulesets
    enums = {
        ("/api/v1/panels", "flag"): sorted(flag_codes(rulesets)),
        ("/api/v1/patients/{patient_id}/trend", "analyte"): analyte_keys(rulesets),
    }
    for (path, name), codes in enums.items():
        for parameter in paths[path]["get"].get("parameters", []):
            if parameter["name"] == name:
                schema = parameter["schema"]
                (schema["items"] if schema.get("type") == "array" else schema)["enum"] = codes


def _spec_required(api: Api) -> None:
    """Fields marked ``SPEC_REQUIRED``: in ``required``, neither nullable nor defaulted."""
    schemas: dict[str, dict[str, Any]] = api.spec.components.schemas
    for key, name in api.ma_plugin.converter.refs.items():
        schema_cls = key[0]
        component = schemas.get(name)
        if component is None:
            continue
        for field_name, field in schema_cls._declared_fields.items():
            if not field.metadata.get(SPEC_REQUIRED):
                continue
            prop_name = field.data_key or field_name
            prop = component.get("properties", {}).get(prop_name)
            if prop is None:
                continue
            prop.pop("nullable", None)
            prop.pop("default", None)
            required = component.setdefault("required", [])
            if prop_name not in required:
                required.append(prop_name)
                required.sort()
