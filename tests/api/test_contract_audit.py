"""An integrator's audit against API.md: the answers that once differed from the contract.

Each test is a request that answered 415 where 413 comes first, 500 on PostgreSQL, ignored
the paging every list has, or was described in /openapi.json otherwise than it answers.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.conftest import Tokens, auth, sample_panel
from tests.api.test_openapi import assert_as_documented, documented, resolve

PANELS = "/api/v1/panels"
LIMIT = 1024 * 1024
BIG = json.dumps(sample_panel(context={"notes": "x" * (LIMIT + 10)})).encode()


def send(
    client: FlaskClient,
    token: str | None,
    body: bytes | str,
    content_type: str = "application/json",
    *,
    chunked: bool = False,
    path: str = PANELS,
) -> Any:
    headers = auth(token) if token else {}
    data = body.encode() if isinstance(body, str) else body
    if chunked:  # no Content-Length: the size is known only by reading
        return client.post(
            path,
            input_stream=io.BytesIO(data),
            headers={**headers, "Transfer-Encoding": "chunked"},
            content_type=content_type,
        )
    return client.post(path, data=data, headers=headers, content_type=content_type)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/problem+json"
    body = dict(response.get_json(force=True))
    assert body["status"] == status and body["type"] and body["title"] and body["detail"]
    return body


# --- "When several apply, the first in this order answers: 401, 403, 413, 415, 400, 422, 409"


@pytest.mark.parametrize(
    ("token", "body", "content_type", "chunked", "expected"),
    [
        (None, BIG, "application/json", False, 401),  # oversized, no token
        (None, BIG, "application/json", True, 401),
        ("unknown", "{", "text/plain", False, 401),  # wrong type, unknown token
        ("admin", BIG, "text/plain", False, 403),  # oversized, wrong type, wrong role
        ("admin", BIG, "application/json", True, 403),
        ("clinician", "{", "text/plain", False, 403),
        ("clinic", BIG, "text/plain", False, 413),  # oversized and wrong type
        ("clinic", BIG, "text/plain", True, 413),  # the same, chunked
        ("clinic", b"{" * (LIMIT + 1), "application/json", True, 413),  # oversized, unparseable
        ("clinic", "{", "text/plain", False, 415),  # wrong type, unparseable
        ("clinic", "{", "application/json; charset=latin-1", False, 415),
        ("clinic", "{", "application/json", True, 400),  # unparseable, chunked
        ("clinic", "[1]", "application/json", False, 422),  # parseable, not an object
    ],
)
def test_when_several_errors_apply_the_first_in_api_md_order_answers(
    client: FlaskClient,
    tokens: Tokens,
    token: str | None,
    body: bytes | str,
    content_type: str,
    chunked: bool,
    expected: int,
) -> None:
    bearer = {
        None: None,
        "unknown": "li_not-a-token",
        "admin": tokens.admin,
        "clinician": tokens.clinician,
        "clinic": tokens.clinic,
    }[token]
    assert_problem(send(client, bearer, body, content_type, chunked=chunked), expected)


def test_a_chunked_oversized_correction_with_the_wrong_type_is_413(
    client: FlaskClient, tokens: Tokens
) -> None:
    posted = client.post(PANELS, json=sample_panel(), headers=auth(tokens.clinic))
    path = f"{posted.headers['Location']}/revisions"
    assert_problem(send(client, tokens.clinic, BIG, "text/plain", chunked=True, path=path), 413)


# --- text JSON may spell but no text can hold ---------------------------------------------


def test_a_lone_surrogate_escape_is_400_naming_the_field_not_500(
    client: FlaskClient, tokens: Tokens
) -> None:
    text = json.dumps(sample_panel(accession="SURROGATE-1"))
    in_notes = text.replace('"notes": "', '"notes": "\\ud800 ')
    problem = assert_problem(send(client, tokens.clinic, in_notes), 400)
    assert "context.notes" in problem["detail"] and "surrogate" in problem["detail"]

    in_a_key = text[:-1] + ', "x\\udfff": 1}'  # even in an unknown field, echoed safely
    problem = assert_problem(send(client, tokens.clinic, in_a_key), 400)
    assert "x\\udfff" in problem["detail"]

    in_a_result = text.replace('"mg/dL"', '"mg/dL\\udc00"', 1)
    problem = assert_problem(send(client, tokens.clinic, in_a_result), 400)
    assert "results.0.unit" in problem["detail"]

    stored = client.get(f"{PANELS}?accession=SURROGATE-1", headers=auth(tokens.clinic))
    assert stored.get_json()["total"] == 0  # nothing half-stored


def test_a_character_outside_the_bmp_written_as_a_surrogate_pair_is_kept(
    client: FlaskClient, tokens: Tokens
) -> None:
    text = json.dumps(sample_panel(accession="PAIR-1", context={"notes": "NOTE"}))
    response = send(client, tokens.clinic, text.replace("NOTE", "\\ud83e\\uddea test tube"))
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["context"]["notes"] == "\U0001f9ea test tube"


# --- what PostgreSQL refuses is refused at the edge, on every database -------------------------


def test_a_value_with_more_digits_than_any_lab_reports_is_422_not_500(
    client: FlaskClient, tokens: Tokens
) -> None:
    text = json.dumps(sample_panel(accession="DIGITS-1"))
    long_value = text.replace('"value": 1.1,', '"value": 1.' + "1" * 60 + ",", 1)
    errors = assert_problem(send(client, tokens.clinic, long_value), 422)["errors"]
    assert "significant digits" in errors["results.0.value"][0]

    long_bound = text.replace('"low": 200', '"low": 200.' + "0" * 60)
    errors = assert_problem(send(client, tokens.clinic, long_bound), 422)["errors"]
    assert "significant digits" in errors["results.5.reference_range.low"][0]

    twenty = text.replace('"value": 1.1,', '"value": 1.' + "1" * 19 + ",", 1)
    kept = send(client, tokens.clinic, twenty)
    assert kept.status_code == 202, kept.get_data(as_text=True)
    assert kept.get_data(as_text=True).count("1." + "1" * 19) == 1  # verbatim, not rounded


def test_a_nul_in_a_list_filter_is_422_as_documented_and_in_a_trend_path_404(
    client: FlaskClient, tokens: Tokens
) -> None:
    spec = client.get("/openapi.json").get_json()
    for query in ("accession=A%00B", "patient_id=%00"):
        response = client.get(f"{PANELS}?{query}", headers=auth(tokens.clinic))
        field = query.split("=")[0]
        assert "NUL" in assert_problem(response, 422)["errors"][field][0]
        assert _parameter(spec, PANELS, field)["schema"]["pattern"] == "^[^\\u0000]*$"
    trend = client.get("/api/v1/patients/%00/trend?analyte=magnesium", headers=auth(tokens.clinic))
    assert assert_problem(trend, 404)["detail"] == "patient results not found"


# --- every list endpoint pages the same way ------------------------------------------------


def test_the_rulesets_list_pages_like_every_list(client: FlaskClient, tokens: Tokens) -> None:
    everything = client.get("/api/v1/rulesets", headers=auth(tokens.clinic)).get_json()
    versions = [r["version"] for r in everything["items"]]
    assert len(versions) >= 2 and everything["per_page"] == len(versions)
    assert everything["page"] == 1 and everything["total"] == len(versions)

    second = client.get("/api/v1/rulesets?page=2&per_page=1", headers=auth(tokens.clinic))
    body = second.get_json()
    assert (body["page"], body["per_page"], body["total"]) == (2, 1, len(versions))
    assert [r["version"] for r in body["items"]] == versions[1:2]
    assert body["active"] == "2026.1"
    for junk in ("page=0", "per_page=abc", "per_page=201"):
        bad = client.get(f"/api/v1/rulesets?{junk}", headers=auth(tokens.clinic))
        assert_problem(bad, 422)


# --- /openapi.json describes what the code answers ----------------------------------------


@pytest.fixture
def spec(client: FlaskClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").get_json())


def _parameter(spec: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    (found,) = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == name]
    return dict(found)


def test_the_openapi_document_lists_the_flag_and_analyte_codes_the_api_accepts(
    client: FlaskClient, tokens: Tokens, spec: dict[str, Any]
) -> None:
    flags = _parameter(spec, PANELS, "flag")["schema"]["items"]["enum"]
    assert {"hypomagnesemia", "weakness", "L", "HH", "vitamin_d_deficiency"} <= set(flags)
    analytes = _parameter(spec, "/api/v1/patients/{patient_id}/trend", "analyte")["schema"]
    assert analytes["enum"][:2] == ["magnesium", "potassium"] and "creatinine" in analytes["enum"]
    for code in flags:
        listed = client.get(f"{PANELS}?flag={code}", headers=auth(tokens.clinic))
        assert listed.status_code == 200, code
    for junk in ("", "hypo"):  # outside the enum: refused, as documented
        assert_problem(client.get(f"{PANELS}?flag={junk}", headers=auth(tokens.clinic)), 422)


def test_health_readiness_and_rulesets_answer_the_bodies_documented(
    client: FlaskClient, tokens: Tokens, spec: dict[str, Any]
) -> None:
    for path, headers in (
        ("/healthz", {}),
        ("/readyz", {}),
        ("/api/v1/rulesets", auth(tokens.clinic)),
        ("/api/v1/rulesets?page=1&per_page=1", auth(tokens.admin)),
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 200
        doc = documented(spec, "get", path.split("?")[0], 200)
        schema = resolve(spec, doc["content"]["application/json"]["schema"])
        assert schema.get("properties"), f"{path}: 200 documented without a body"
        assert set(response.get_json()) <= set(schema["properties"]), path
    activated = client.post("/api/v1/rulesets/2026.1/activate", headers=auth(tokens.admin))
    doc = documented(spec, "post", "/api/v1/rulesets/{version}/activate", 200)
    assert resolve(spec, doc["content"]["application/json"]["schema"])["properties"].keys() >= set(
        activated.get_json()
    )


def test_a_409_documents_the_differences_it_names(
    client: FlaskClient, tokens: Tokens, spec: dict[str, Any]
) -> None:
    client.post(PANELS, json=sample_panel(), headers=auth(tokens.clinic))
    changed = sample_panel(collected_at="2026-11-20T09:30:00Z")
    conflict = client.post(PANELS, json=changed, headers=auth(tokens.clinic))
    body = assert_as_documented(spec, "post", PANELS, conflict)
    assert body["differences"] == ["collected_at"]
    schema = resolve(spec, documented(spec, "post", PANELS, 409)["content"])
    properties = resolve(spec, schema["application/problem+json"]["schema"])["properties"]
    assert properties["differences"]["type"] == "array"
