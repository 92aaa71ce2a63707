"""API.md's panel section, one documented answer per test."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from flask.testing import FlaskClient

from tests.api.conftest import (
    Tokens,
    auth,
    clinic_app,
    differing_bodies,
    now_iso,
    post_at_once,
    sample_panel,
)

PANELS = "/api/v1/panels"


def post(client: FlaskClient, token: str, body: Any, **kw: Any):  # type: ignore[no-untyped-def]
    if isinstance(body, str | bytes):
        return client.post(
            PANELS,
            data=body,
            headers=auth(token),
            content_type=kw.pop("content_type", "application/json"),
            **kw,
        )
    return client.post(PANELS, json=body, headers=auth(token), **kw)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return dict(body)


def test_posting_a_panel_answers_202_with_location_and_queued_status(client, tokens):
    response = post(client, tokens.clinic, sample_panel())
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued"
    assert response.headers["Location"] == f"/api/v1/panels/{body['id']}"
    assert body["interpretation"] is None


def test_reported_value_and_unit_are_kept_verbatim_beside_the_canonical_value(client, tokens):
    raw = json.dumps(sample_panel()).replace(
        '"value": 1.1, "unit": "mg/dL"', '"value": 1.10, "unit": "mg/dL"'
    )
    response = post(client, tokens.clinic, raw)
    magnesium = response.get_json()["results"][0]
    assert magnesium["reported"] == {"value": Decimal("1.10"), "unit": "mg/dL"}
    assert magnesium["value"] == Decimal("0.45") and magnesium["unit"] == "mmol/L"
    assert b'"reported":{"value":1.10,"unit":"mg/dL"}' in response.get_data()


def test_same_accession_same_content_is_a_safe_retry_answering_200(client, tokens):
    first = post(client, tokens.clinic, sample_panel())
    # key order and 1.10 vs 1.1 do not matter; unknown fields are ignored
    panel = sample_panel()
    reordered = {k: panel[k] for k in reversed(list(panel))}
    reordered["sent_by"] = "retrying proxy"
    raw = json.dumps(reordered).replace('"value": 1.1,', '"value": 1.10,')
    again = post(client, tokens.clinic, raw)
    assert again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]


def test_same_accession_different_content_is_409(client, tokens):
    first = post(client, tokens.clinic, sample_panel())
    changed = sample_panel()
    changed["results"][0]["value"] = 1.3
    body = assert_problem(post(client, tokens.clinic, changed), 409)
    assert body["panel_id"] == first.get_json()["id"]
    assert "revisions" in body["detail"]
    # what differs, so the clinic knows whether it is a correction or a reused number
    assert body["differences"] == ["results[magnesium].value"]
    assert "results[magnesium].value" in body["detail"]
    other_patient = sample_panel(patient={"id": "P-9", "sex": "male"})
    body = assert_problem(post(client, tokens.clinic, other_patient), 409)
    assert body["differences"] == ["patient.birth_date", "patient.id", "patient.sex"]


def test_one_accession_posted_at_once_from_many_threads_is_one_panel(app, tokens):
    # the embedded default serves from several threads and processes on one SQLite file
    same = [sample_panel(accession="RACE") for _ in range(6)]
    assert post_at_once(app, tokens.clinic, same) == [200] * 5 + [202]
    assert post_at_once(app, tokens.clinic, differing_bodies("RACE-2", 6)) == [202] + [409] * 5
    listing = app.test_client().get(f"{PANELS}?patient_id=P-0042", headers=auth(tokens.clinic))
    assert listing.get_json()["total"] == 2


def test_same_accession_in_another_clinic_is_a_different_panel(client, tokens):
    a = post(client, tokens.clinic, sample_panel()).get_json()["id"]
    response = post(client, tokens.other_clinic, sample_panel())
    assert response.status_code == 202 and response.get_json()["id"] != a


def test_interpretation_of_the_api_example(client, tokens, posted):
    interpretation = posted["interpretation"]
    assert posted["status"] == "interpreted"
    assert interpretation["ruleset"] == "2026.1" and interpretation["revision"] == 1
    assert interpretation["status"] == "flagged"
    assert interpretation["priority"] == "urgent"
    magnesium = next(f for f in interpretation["findings"] if f["code"] == "hypomagnesemia")
    assert (
        magnesium["value"] == Decimal("0.45")
        and magnesium["grade"] == 2
        and magnesium["severity"] == "moderate"
    )
    assert magnesium["reported"] == {"value": Decimal("1.1"), "unit": "mg/dL"}
    assert (
        magnesium["reference_range"]["low"] == Decimal("0.70")
        and magnesium["reference_range"]["source"] == "ruleset"
    )
    assert any(r["code"] == "weakness" and r["urgent"] for r in interpretation["red_flags"])
    loop = next(c for c in interpretation["contributing_factors"] if c["code"] == "loop_diuretic")
    assert {"hypokalemia", "hypomagnesemia"} <= set(loop["relates_to"])
    assert "urgent_neurology_referral" in [f["code"] for f in interpretation["follow_up"]]
    assert len(interpretation["results"]) == 6


def test_interpretations_list_newest_first_and_revisions_keep_history(client, tokens, posted, work):
    corrected = sample_panel()
    corrected["results"][0]["value"] = 2.0  # magnesium corrected to normal
    response = client.post(
        f"{PANELS}/{posted['id']}/revisions", json=corrected, headers=auth(tokens.clinic)
    )
    assert response.status_code == 202 and response.get_json()["revision"] == 2
    assert response.get_json()["status"] == "queued"
    work(posted["id"])
    listing = client.get(
        f"{PANELS}/{posted['id']}/interpretations", headers=auth(tokens.clinic)
    ).get_json()
    assert listing["total"] == 2
    assert [i["revision"] for i in listing["items"]] == [2, 1]
    assert "hypomagnesemia" not in [f["code"] for f in listing["items"][0]["findings"]]
    first = client.get(
        f"{PANELS}/{posted['id']}?revision=1", headers=auth(tokens.clinic)
    ).get_json()
    assert first["results"][0]["reported"]["value"] == Decimal("1.1")
    assert first["interpretation"]["revision"] == 1


def test_a_revision_sent_twice_is_one_revision_and_a_revert_is_a_new_one(client, tokens, posted):
    url = f"{PANELS}/{posted['id']}/revisions"
    corrected = sample_panel()
    corrected["results"][0]["value"] = 2.0
    assert client.post(url, json=corrected, headers=auth(tokens.clinic)).status_code == 202
    retry = client.post(url, json=corrected, headers=auth(tokens.clinic))
    assert retry.status_code == 200 and retry.get_json()["revision"] == 2
    # the lab withdraws its correction: the original values are current again, as revision 3
    reverted = client.post(url, json=sample_panel(), headers=auth(tokens.clinic))
    assert reverted.status_code == 202 and reverted.get_json()["revision"] == 3
    assert reverted.get_json()["results"][0]["reported"]["value"] == Decimal("1.1")


def test_revision_with_another_accession_is_422_on_accession(client, tokens, posted):
    body = sample_panel(accession="OTHER")
    response = client.post(
        f"{PANELS}/{posted['id']}/revisions", json=body, headers=auth(tokens.clinic)
    )
    assert "accession" in assert_problem(response, 422)["errors"]


def test_list_filters_and_pages(client, tokens, work):
    ids = []
    for n in range(3):
        panel = sample_panel(accession=f"ACC-{n}")
        panel["patient"] = {"id": f"P-{n % 2}", "sex": "male", "age_years": 40}
        if n == 2:
            panel["results"] = [{"analyte": "magnesium", "value": 0.85, "unit": "mmol/L"}]
            panel.pop("context")
        ids.append(post(client, tokens.clinic, panel).get_json()["id"])
    work(*ids)
    everything = client.get(f"{PANELS}?per_page=2", headers=auth(tokens.clinic)).get_json()
    assert everything["total"] == 3 and len(everything["items"]) == 2
    assert everything["page"] == 1 and everything["per_page"] == 2
    by_patient = client.get(f"{PANELS}?patient_id=P-0", headers=auth(tokens.clinic)).get_json()
    assert {i["accession"] for i in by_patient["items"]} == {"ACC-0", "ACC-2"}
    flagged = client.get(f"{PANELS}?flag=hypomagnesemia", headers=auth(tokens.clinic)).get_json()
    assert {i["accession"] for i in flagged["items"]} == {"ACC-0", "ACC-1"}
    normal = client.get(f"{PANELS}?status=normal", headers=auth(tokens.clinic)).get_json()
    assert [i["accession"] for i in normal["items"]] == ["ACC-2"]
    one = client.get(f"{PANELS}?accession=ACC-1", headers=auth(tokens.clinic)).get_json()
    assert one["total"] == 1
    window = client.get(
        f"{PANELS}?collected_from=2026-11-20T00:00:00Z&collected_to=2026-11-20T23:59:59Z",
        headers=auth(tokens.clinic),
    ).get_json()
    assert window["total"] == 3
    assert (
        client.get(f"{PANELS}?collected_from=2026-11-21", headers=auth(tokens.clinic)).get_json()[
            "total"
        ]
        == 0
    )
    assert client.get(PANELS, headers=auth(tokens.other_clinic)).get_json()["total"] == 0


def test_trend_gives_canonical_values_with_the_interval_used(client, tokens, work):
    ids = []
    for day, value in ((1, 1.1), (3, 1.9)):
        panel = sample_panel(accession=f"T-{day}", collected_at=f"2026-11-0{day}T08:00:00Z")
        panel["results"] = [{"analyte": "magnesium", "value": value, "unit": "mg/dL"}]
        ids.append(post(client, tokens.clinic, panel).get_json()["id"])
    work(*ids)
    trend = client.get(
        "/api/v1/patients/P-0042/trend?analyte=magnesium", headers=auth(tokens.clinic)
    ).get_json()
    assert [p["value"] for p in trend["items"]] == [Decimal("0.45"), Decimal("0.78")]
    assert [p["interpretation"] for p in trend["items"]] == ["L", "N"]
    assert trend["items"][0]["reference_range"]["low"] == Decimal("0.70")
    response = client.get("/api/v1/patients/P-0042/trend?analyte=zinc", headers=auth(tokens.clinic))
    assert "analyte" in assert_problem(response, 422)["errors"]


# --- errors, in API.md's order ---------------------------------------------------------------


def test_no_token_unknown_token_and_malformed_header_are_401(client, tokens):
    assert_problem(client.post(PANELS, json=sample_panel()), 401)
    assert_problem(client.post(PANELS, json=sample_panel(), headers=auth("li_nope")), 401)
    response = client.get(PANELS, headers={"Authorization": "Basic abc"})
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_401(client, tokens, runtime):
    from sqlalchemy import select

    from labinterp.models import ApiToken
    from labinterp.services.accounts import hash_token, revoke_token

    with runtime.session_factory() as session:
        token_id = session.scalars(
            select(ApiToken.id).where(ApiToken.token_hash == hash_token(tokens.clinic))
        ).one()
        revoke_token(session, token_id)
    assert_problem(client.get(PANELS, headers=auth(tokens.clinic)), 401)


def test_admin_and_clinician_may_not_post_panels_403(client, tokens):
    assert_problem(post(client, tokens.admin, sample_panel()), 403)
    assert_problem(post(client, tokens.clinician, sample_panel()), 403)


def test_another_clinics_panel_is_404_like_a_missing_one(client, tokens, posted):
    a = assert_problem(
        client.get(f"{PANELS}/{posted['id']}", headers=auth(tokens.other_clinic)), 404
    )
    b = assert_problem(
        client.get(f"{PANELS}/00000000-0000-4000-8000-000000000000", headers=auth(tokens.clinic)),
        404,
    )
    assert a["detail"] == b["detail"]
    assert_problem(client.get(f"{PANELS}/not-a-uuid", headers=auth(tokens.clinic)), 404)
    assert_problem(
        client.get(f"{PANELS}/{posted['id']}/interpretations", headers=auth(tokens.other_clinic)),
        404,
    )


def test_another_clinic_cannot_revise_list_or_trend_what_is_not_its_own(client, tokens, posted):
    other = auth(tokens.other_clinic)
    revision = client.post(f"{PANELS}/{posted['id']}/revisions", json=sample_panel(), headers=other)
    assert_problem(revision, 404)
    assert client.get(PANELS, headers=other).get_json()["total"] == 0
    trend = client.get("/api/v1/patients/P-0042/trend?analyte=magnesium", headers=other)
    assert_problem(trend, 404)
    # the same patient id in another clinic is another patient
    mine = client.get(
        "/api/v1/patients/P-0042/trend?analyte=magnesium", headers=auth(tokens.clinic)
    )
    assert mine.status_code == 200 and mine.get_json()["total"] == 1


def test_clinician_and_admin_read_panels_of_their_clinics(client, tokens, posted):
    assert client.get(f"{PANELS}/{posted['id']}", headers=auth(tokens.clinician)).status_code == 200
    assert client.get(f"{PANELS}/{posted['id']}", headers=auth(tokens.admin)).status_code == 200


def test_body_over_the_limit_is_413(client, tokens):
    big = json.dumps(sample_panel(context={"notes": "x" * (1024 * 1024 + 10)}))
    assert_problem(post(client, tokens.clinic, big), 413)


def test_unsupported_content_type_is_415(client, tokens):
    assert_problem(post(client, tokens.clinic, "accession=1", content_type="text/plain"), 415)
    assert_problem(client.post(PANELS, headers=auth(tokens.clinic)), 415)


def test_unparseable_json_is_400(client, tokens):
    assert_problem(post(client, tokens.clinic, '{"accession": "A",'), 400)
    assert_problem(post(client, tokens.clinic, '{"value": NaN}'), 400)
    assert_problem(post(client, tokens.clinic, b"\xff\xfe{"), 400)


def test_errors_come_in_api_order(client, tokens):
    # 401 before 415, 403 before 413, 413 before 415, 415 before 400, 400 before 422, 422 before 409
    assert_problem(client.post(PANELS, data="x", content_type="text/plain"), 401)
    assert_problem(post(client, tokens.admin, "x" * (1024 * 1024 + 1)), 403)
    assert_problem(
        post(client, tokens.clinic, "x" * (1024 * 1024 + 1), content_type="text/plain"), 413
    )
    assert_problem(post(client, tokens.clinic, "{", content_type="text/plain"), 415)
    assert_problem(post(client, tokens.clinic, "{"), 400)
    post(client, tokens.clinic, sample_panel())
    invalid_retry = sample_panel()
    invalid_retry["results"][0]["unit"] = "furlongs"
    assert_problem(post(client, tokens.clinic, invalid_retry), 422)


def _errors_for(client: FlaskClient, tokens: Tokens, body: Any) -> dict[str, list[str]]:
    problem = assert_problem(post(client, tokens.clinic, body), 422)
    return dict(problem["errors"])


def test_body_that_is_not_an_object_is_422(client, tokens):
    assert "body" in _errors_for(client, tokens, "[1, 2]")
    assert "body" in _errors_for(client, tokens, '"panel"')


def test_required_fields_missing_are_422_by_path(client, tokens):
    errors = _errors_for(client, tokens, {"patient": {}})
    assert {"accession", "patient.id", "collected_at", "results"} <= set(errors)
    assert "results" in _errors_for(client, tokens, sample_panel(results=[]))


def test_unit_not_valid_for_the_analyte_names_field_and_allowed_units(client, tokens):
    panel = sample_panel()
    panel["results"][1] = {"analyte": "potassium", "value": 3.2, "unit": "mg/dL"}
    errors = _errors_for(client, tokens, panel)
    message = " ".join(errors["results.1.unit"])
    assert "potassium" in message and "mmol/L" in message


def test_values_missing_non_numeric_zero_negative_or_impossible_are_422(client, tokens):
    cases = [None, "3.2", True, 0, -1, 99]
    for value in cases:
        panel = sample_panel()
        panel["results"][1] = {"analyte": "potassium", "value": value, "unit": "mmol/L"}
        if value is None:
            del panel["results"][1]["value"]
        assert "results.1.value" in _errors_for(client, tokens, panel), value


def test_unknown_analyte_and_loinc_are_422(client, tokens):
    panel = sample_panel()
    panel["results"][0] = {"analyte": "zinc", "value": 1, "unit": "mg/dL"}
    panel["results"][1] = {"loinc": "0000-0", "value": 1, "unit": "mmol/L"}
    errors = _errors_for(client, tokens, panel)
    assert "results.0.analyte" in errors and "results.1.loinc" in errors


def test_collected_in_the_future_or_before_birth_is_422(client, tokens):
    assert "collected_at" in _errors_for(
        client, tokens, sample_panel(collected_at=now_iso(dt.timedelta(minutes=6)))
    )
    assert (
        post(
            client, tokens.clinic, sample_panel(collected_at=now_iso(dt.timedelta(minutes=4)))
        ).status_code
        == 202
    )
    assert "collected_at" in _errors_for(
        client, tokens, sample_panel(accession="B", collected_at="1980-01-01T00:00:00Z")
    )
    assert "collected_at" in _errors_for(
        client, tokens, sample_panel(accession="C", collected_at="yesterday")
    )


def test_duplicate_analyte_and_unknown_context_code_are_422(client, tokens):
    panel = sample_panel()
    panel["results"].append({"analyte": "potassium", "value": 4.0, "unit": "mmol/L"})
    panel["context"]["symptoms"] = ["muscle_weakness", "headache"]
    errors = _errors_for(client, tokens, panel)
    assert "results.6.analyte" in errors or "results.6.loinc" in errors
    assert "context.symptoms.1" in errors


def test_rate_limit_answers_429_with_retry_after(tmp_path):
    _, client, token = clinic_app(
        {"LABINTERP_INSTANCE": str(tmp_path), "LABINTERP_RATE_LIMIT": "3"}
    )
    statuses = [client.get(PANELS, headers=auth(token)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get(PANELS, headers=auth(token))
    assert_problem(limited, 429)
    assert int(limited.headers["Retry-After"]) > 0


def test_database_unreachable_is_503_not_500(tmp_path):
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
    response = client.post(PANELS, json=sample_panel(), headers=auth("li_whatever"))
    assert_problem(response, 503)
    assert response.headers["Retry-After"]
    ready = client.get("/readyz")
    body = assert_problem(ready, 503)
    assert body["checks"]["database"]["ok"] is False


def test_health_rulesets_openapi_and_metrics(client, tokens, posted):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["broker"]["ok"] is True
    rulesets = client.get("/api/v1/rulesets", headers=auth(tokens.clinic)).get_json()
    assert {r["version"] for r in rulesets["items"]} >= {"2026.1", "2026.2"}
    assert rulesets["active"] == "2026.1"
    spec = client.get("/openapi.json").get_json()
    assert (
        "/api/v1/panels" in spec["paths"] and "/api/v1/panels/{panel_id}/revisions" in spec["paths"]
    )
    assert client.get("/docs").status_code == 200


def _samples(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }


def test_metrics_count_requests_panels_interpretations_and_findings(client, tokens, work):
    """/metrics (Prometheus text) counts what happened: the POST by its route and status,
    the panel accepted, its interpretation by status and priority, its findings by code, and
    shows the queue (how many wait, and for how long the oldest)."""
    before = _samples(client)
    posted = client.post("/api/v1/panels", json=sample_panel(), headers=auth(tokens.clinic))
    assert posted.status_code == 202
    waiting = _samples(client)
    assert waiting[("labinterp_panels_queued", ())] == 1
    assert waiting[("labinterp_oldest_queued_panel_age_seconds", ())] >= 0
    work(posted.get_json()["id"])
    after = _samples(client)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    route = {"method": "POST", "route": "/api/v1/panels"}
    assert grew("labinterp_http_requests_total", **route, status="202") == 1
    assert grew("labinterp_http_request_duration_seconds_count", **route) == 1
    assert grew("labinterp_panels_accepted_total", kind="new") == 1
    assert grew("labinterp_interpretations_total", status="flagged", priority="urgent") == 1
    assert grew("labinterp_findings_total", code="hypomagnesemia") == 1
    assert grew("labinterp_interpretation_latency_seconds_count") == 1
    assert after[("labinterp_panels_queued", ())] == 0
    assert after[("labinterp_oldest_queued_panel_age_seconds", ())] == 0


def test_admin_activates_a_ruleset_and_new_panels_use_it(client, tokens, work):
    assert_problem(
        client.post("/api/v1/rulesets/2026.2/activate", headers=auth(tokens.clinic)), 403
    )
    assert_problem(client.post("/api/v1/rulesets/1999.1/activate", headers=auth(tokens.admin)), 404)
    assert (
        client.post("/api/v1/rulesets/2026.2/activate", headers=auth(tokens.admin)).get_json()[
            "active"
        ]
        == "2026.2"
    )
    panel = sample_panel(accession="R2")
    panel["results"] = [{"analyte": "magnesium", "value": 0.80, "unit": "mmol/L"}]
    panel_id = post(client, tokens.clinic, panel).get_json()["id"]
    work(panel_id)
    body = client.get(f"{PANELS}/{panel_id}", headers=auth(tokens.clinic)).get_json()
    assert body["interpretation"]["ruleset"] == "2026.2"
    assert [f["code"] for f in body["interpretation"]["findings"]] == ["hypomagnesemia"]
