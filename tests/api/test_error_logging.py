"""An unexpected error, in the API or in the worker's task, is logged by its type and place,
never with its message: that may quote a patient's data."""

from __future__ import annotations

import uuid

import pytest
from flask.testing import FlaskClient

from labinterp.runtime import Runtime, set_runtime
from tests.api.conftest import Tokens, assert_problem, auth

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


def test_a_failing_interpretation_task_logs_no_patient_data(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from worker import tasks

    set_runtime(runtime)
    monkeypatch.setattr(tasks, "interpret_panel_service", _bug)
    panel_id = str(uuid.uuid4())
    with caplog.at_level("DEBUG"):
        assert tasks.interpret_panel(panel_id) == "failed"
    assert f"interpreting panel {panel_id} failed: ValueError at" in caplog.text
    assert PHI not in caplog.text and "1937-04-23" not in caplog.text
