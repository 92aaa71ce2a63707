"""An unexpected error, in the API or in the worker's task, is logged by its type and place,
never with its message: that may quote a patient's data."""

from __future__ import annotations

import uuid

import pytest
from flask.testing import FlaskClient

from labinterp.runtime import Runtime
from tests.api.conftest import Tokens, assert_problem, auth, sample_panel

PHI = "PHI-0b7e4d1a"


def _bug(*_args: object, **_kwargs: object) -> None:
    raise ValueError(f"could not read patient {PHI} born 1937-04-23")


def test_an_unexpected_api_error_is_a_500_problem_and_logs_no_patient_data(
    client: FlaskClient,
    tokens: Tokens,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr("labinterp.services.reading.list_panels", _bug)
    with caplog.at_level("DEBUG"):
        response = client.get(f"/api/v1/panels?patient_id={PHI}", headers=auth(tokens.clinic))
    body = assert_problem(response, 500)
    assert PHI not in response.get_data(as_text=True) and "logged" in body["detail"]
    logged = "\n".join(caplog.text.splitlines())
    assert "unhandled error on GET /api/v1/panels: ValueError at" in logged
    assert PHI not in logged and "1937-04-23" not in logged


def test_an_engine_failure_fails_the_panel_and_logs_no_patient_data(
    runtime: Runtime,
    client: FlaskClient,
    tokens: Tokens,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from labinterp.services import interpretation

    posted = client.post("/api/v1/panels", json=sample_panel(), headers=auth(tokens.clinic))
    panel_id = uuid.UUID(posted.get_json()["id"])
    monkeypatch.setattr(interpretation, "interpret", _bug)
    with caplog.at_level("DEBUG"):
        outcome = interpretation.interpret_panels(
            runtime.engine, runtime.rulesets, [panel_id], max_attempts=5
        )
    assert outcome.failed == [(panel_id, "engine_error")]
    assert f"the engine failed on panel {panel_id}: ValueError at" in caplog.text
    assert PHI not in caplog.text and "1937-04-23" not in caplog.text
    failure = client.get(f"/api/v1/panels/{panel_id}", headers=auth(tokens.clinic)).get_json()
    assert failure["failure_code"] == "engine_error" and PHI not in failure["failure"]
