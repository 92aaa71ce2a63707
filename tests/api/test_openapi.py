"""/openapi.json tells the truth: real error bodies, content types, auth and request facts."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import Tokens, auth, clinic_app, sample_panel

PANELS = "/api/v1/panels"
PROBLEM = "application/problem+json"
METHODS = ("get", "put", "post", "patch", "delete")
PUBLIC = ("/healthz", "/readyz", "/metrics", "/openapi.json")
_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}


@pytest.fixture
def spec(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.get_json())


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        _, section, name = node["$ref"].removeprefix("#/").split("/", 2)
        node = spec["components"][section][name]
    return node


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def documented(spec: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    """The documented response (resolved) of one operation for one status."""
    responses = spec["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
    return resolve(spec, responses[str(status)])


def check(spec: dict[str, Any], schema: dict[str, Any], value: Any, where: str = "body") -> None:
    """The subset of JSON Schema the documented problem schemas use: type, required,
    properties, additionalProperties, items."""
    schema = resolve(spec, schema)
    if "type" in schema:
        expected = _TYPES[schema["type"]]
        assert isinstance(value, expected) and not (
            schema["type"] in ("integer", "number") and isinstance(value, bool)
        ), f"{where}: {value!r} is not {schema['type']}"
    if isinstance(value, dict):
        missing = set(schema.get("required", ())) - set(value)
        assert not missing, f"{where}: documented as required but absent: {sorted(missing)}"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                check(spec, properties[key], item, f"{where}.{key}")
            elif isinstance(extra, dict):
                check(spec, extra, item, f"{where}.{key}")
            else:
                assert extra is not False, f"{where}: {key!r} is not documented"
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check(spec, schema["items"], item, f"{where}.{i}")


def assert_as_documented(spec: dict[str, Any], method: str, path: str, response: Any) -> Any:
    """A real error response has the documented content type, headers and body schema."""
    doc = documented(spec, method, path, response.status_code)
    assert response.mimetype in doc["content"], (response.mimetype, list(doc["content"]))
    for header in doc.get("headers", {}):
        assert response.headers.get(header), f"{header} documented but not sent"
    body = response.get_json(force=True)
    check(spec, doc["content"][response.mimetype]["schema"], body)
    return body


def test_every_documented_error_is_problem_json_with_the_rfc_9457_members(spec):
    """Except what a FHIR endpoint answers about the FHIR document itself (400, 409, 422):
    an OperationOutcome, as FHIR clients expect (issue 8); its 401, 403, 413, 415 and 429
    are problem+json like every other endpoint's. The FHIR reads (GET /fhir/r4/...) answer
    every error as an OperationOutcome."""
    problem = spec["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert {name: problem["properties"][name]["type"] for name in problem["required"]} == {
        "type": "string",
        "title": "string",
        "status": "integer",
        "detail": "string",
    }
    assert problem["additionalProperties"] is True  # panel_id, checks … may come along
    assert "Error" not in spec["components"]["schemas"]  # flask-smorest's {code, message}
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if status == "default" or int(status) >= 400:
                content = resolve(spec, response)["content"]
                fhir_read = path.startswith("/fhir/") and method == "get"
                if fhir_read or (path.startswith("/fhir/") and status in ("400", "409", "422")):
                    assert list(content) == ["application/fhir+json"], (method, path, status)
                    outcome = resolve(spec, content["application/fhir+json"]["schema"])
                    assert {"resourceType", "issue"} <= set(outcome["properties"])
                    continue
                assert list(content) == [PROBLEM], (method, path, status)
                schema = resolve(spec, content[PROBLEM]["schema"])
                assert {"type", "title", "status", "detail"} <= set(schema["required"])


def test_a_real_422_from_posting_a_panel_matches_the_documented_422(client, tokens, spec):
    panel = sample_panel()
    del panel["results"][1]["value"]
    response = client.post(PANELS, json=panel, headers=auth(tokens.clinic))
    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    body = assert_as_documented(spec, "post", PANELS, response)
    schema = resolve(spec, documented(spec, "post", PANELS, 422)["content"][PROBLEM]["schema"])
    assert "errors" in schema["required"]
    assert "results.1.value" in body["errors"]


def test_real_auth_body_and_conflict_errors_match_what_is_documented(
    app: Flask, client: FlaskClient, tokens: Tokens, spec: dict[str, Any]
):
    def send(**kw: Any) -> Any:
        kw.setdefault("headers", auth(tokens.clinic))
        return client.post(PANELS, **kw)

    unauthenticated = send(json=sample_panel(), headers={})
    assert unauthenticated.status_code == 401
    assert_as_documented(spec, "post", PANELS, unauthenticated)  # with WWW-Authenticate
    forbidden = send(json=sample_panel(), headers=auth(tokens.clinician))
    assert forbidden.status_code == 403
    assert_as_documented(spec, "post", PANELS, forbidden)
    malformed = send(data="{not json", content_type="application/json")
    assert malformed.status_code == 400
    assert_as_documented(spec, "post", PANELS, malformed)
    unsupported = send(data="accession=1", content_type="text/plain")
    assert unsupported.status_code == 415
    assert_as_documented(spec, "post", PANELS, unsupported)

    assert send(json=sample_panel()).status_code == 202
    changed = sample_panel()
    changed["results"][0]["value"] = 1.3
    conflict = send(json=changed)
    assert conflict.status_code == 409
    body = assert_as_documented(spec, "post", PANELS, conflict)
    assert uuid.UUID(body["panel_id"])  # documented as required on this 409

    app.config["MAX_CONTENT_LENGTH"] = 64
    too_large = send(json=sample_panel(accession="BIG"))
    assert too_large.status_code == 413
    assert_as_documented(spec, "post", PANELS, too_large)


def test_a_real_404_and_a_list_422_match_what_is_documented(client, tokens, spec):
    path = "/api/v1/panels/{panel_id}"
    missing = client.get(f"{PANELS}/{uuid.uuid4()}", headers=auth(tokens.clinic))
    assert missing.status_code == 404
    assert_as_documented(spec, "get", path, missing)
    bad_query = client.get(f"{PANELS}?page=0", headers=auth(tokens.clinic))
    assert bad_query.status_code == 422
    body = assert_as_documented(spec, "get", PANELS, bad_query)
    assert "page" in body["errors"]


def test_post_endpoints_document_every_answer_of_their_body_and_auth_checks(spec):
    for path in (PANELS, "/api/v1/panels/{panel_id}/revisions"):
        responses = spec["paths"][path]["post"]["responses"]
        assert {"400", "401", "403", "409", "413", "415", "422", "429"} <= set(responses), path
    assert "404" in spec["paths"]["/api/v1/panels/{panel_id}/revisions"]["post"]["responses"]


def test_token_operations_document_401_403_and_429_with_retry_after(spec):
    guarded = [
        (m, p, op) for m, p, op in operations(spec) if op.get("security") == [{"bearer": []}]
    ]
    assert len(guarded) >= 8
    for method, path, operation in guarded:
        assert {"401", "403", "429"} <= set(operation["responses"]), (method, path)
        limited = documented(spec, method, path, 429)
        assert "Retry-After" in limited["headers"], (method, path)
        assert resolve(spec, limited["headers"]["Retry-After"])["schema"]["type"] == "integer"
        assert "WWW-Authenticate" in documented(spec, method, path, 401)["headers"]


def test_documented_security_is_what_the_api_enforces_without_a_token(client, spec):
    """Every operation documented with a bearer token answers 401 without one; every one
    documented with security [] answers without a token."""
    assert all(spec["paths"][path]["get"]["security"] == [] for path in PUBLIC)
    for method, path, operation in operations(spec):
        url = (
            path.replace("{panel_id}", str(uuid.uuid4()))
            .replace("{job_id}", str(uuid.uuid4()))
            .replace("{version}", "2026.2")
            .replace("{patient_id}", "P-0042")
        )
        status = client.open(url, method=method.upper()).status_code
        if operation["security"] == []:
            assert status not in (401, 403), (method, path, status)
        else:
            assert operation["security"] == [{"bearer": []}]
            assert status == 401, (method, path, status)


def test_paths_with_an_id_document_404_and_lists_document_422(spec):
    for method, path, operation in operations(spec):
        if "{" in path:
            assert "404" in operation["responses"], (method, path)
    for path in (
        PANELS,
        "/api/v1/panels/{panel_id}/interpretations",
        "/api/v1/patients/{patient_id}/trend",
    ):
        assert "422" in spec["paths"][path]["get"]["responses"], path
    assert "404" in spec["paths"]["/api/v1/patients/{patient_id}/trend"]["get"]["responses"]


def test_a_real_429_matches_the_documented_429(tmp_path: Path):
    _, client, token = clinic_app(
        {"LABINTERP_INSTANCE": str(tmp_path), "LABINTERP_RATE_LIMIT": "1"}
    )
    spec = client.get("/openapi.json").get_json()
    statuses = [client.get(PANELS, headers=auth(token)) for _ in range(2)]
    assert [r.status_code for r in statuses] == [200, 429]
    assert_as_documented(spec, "get", PANELS, statuses[1])  # with Retry-After


def test_readyz_documents_its_503_with_the_checks_a_real_503_carries(tmp_path: Path):
    from labinterp.app import create_app
    from labinterp.config import load_settings
    from labinterp.runtime import build_runtime

    settings = load_settings(
        {
            "LABINTERP_INSTANCE": str(tmp_path),
            "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1",
        }
    )
    client = create_app(runtime=build_runtime(settings)).test_client()
    spec = client.get("/openapi.json").get_json()
    schema = resolve(spec, documented(spec, "get", "/readyz", 503)["content"][PROBLEM]["schema"])
    assert "checks" in schema["required"]
    ready = client.get("/readyz")
    assert ready.status_code == 503
    body = assert_as_documented(spec, "get", "/readyz", ready)
    assert body["checks"]["database"]["ok"] is False


def test_result_value_and_unit_are_documented_required_and_results_non_empty(client, tokens, spec):
    schemas = spec["components"]["schemas"]
    result = schemas["ResultIn"]
    assert {"value", "unit"} <= set(result["required"])
    for name in ("value", "unit"):
        assert not result["properties"][name].get("nullable"), name
        assert "default" not in result["properties"][name], name
    assert schemas["PanelIn"]["properties"]["results"]["minItems"] == 1
    # … while the API answers as before: the acceptance rules name the field
    for value in (None, "absent"):
        panel = sample_panel()
        if value is None:
            panel["results"][0]["value"] = None
        else:
            del panel["results"][0]["value"]
        response = client.post(PANELS, json=panel, headers=auth(tokens.clinic))
        assert response.status_code == 422
        assert response.get_json()["errors"]["results.0.value"] == ["value is required"]
    empty = client.post(PANELS, json=sample_panel(results=[]), headers=auth(tokens.clinic))
    assert empty.status_code == 422 and "results" in empty.get_json()["errors"]


def test_hl7_documents_only_the_answers_it_gives(spec):
    """POST /hl7/v2 answers every problem of the message in its ACK (HTTP 200); as problem+json
    only its auth, size and type: never 400 or 422, which are for JSON bodies."""
    responses = set(spec["paths"]["/hl7/v2"]["post"]["responses"])
    assert {"200", "401", "403", "413", "415", "429"} <= responses
    assert not {"400", "422"} & responses
    fhir = set(spec["paths"]["/fhir/r4/Bundle"]["post"]["responses"])
    assert {"400", "413", "415", "422"} <= fhir  # a JSON body (application/fhir+json)


def test_the_fhir_reads_are_documented_and_answer_as_documented(client, tokens, spec):
    """GET /fhir/r4/DiagnosticReport/{panel_id} and /fhir/r4/metadata are in /openapi.json,
    and what they really answer (a resource, or an OperationOutcome with the documented
    headers) is what it says."""
    report = "/fhir/r4/DiagnosticReport/{panel_id}"
    assert spec["paths"][report]["get"]["security"] == [{"bearer": []}]
    assert spec["paths"]["/fhir/r4/metadata"]["get"]["security"] == []
    posted = client.post(PANELS, json=sample_panel(), headers=auth(tokens.clinic))
    panel_url = report.replace("{panel_id}", posted.get_json()["id"])
    missing_url = report.replace("{panel_id}", str(uuid.uuid4()))
    for response in (
        client.get(panel_url),  # no token: 401
        client.get(panel_url, headers=auth("li_not-a-token")),  # 401
        client.get(missing_url, headers=auth(tokens.clinic)),  # 404
    ):
        body = assert_as_documented(spec, "get", report, response)
        assert body["resourceType"] == "OperationOutcome"
    read = client.get(panel_url, headers=auth(tokens.clinician))
    assert read.status_code == 200
    assert assert_as_documented(spec, "get", report, read)["resourceType"] == "DiagnosticReport"
    capability = client.get("/fhir/r4/metadata")
    assert (
        assert_as_documented(spec, "get", "/fhir/r4/metadata", capability)["resourceType"]
        == "CapabilityStatement"
    )
