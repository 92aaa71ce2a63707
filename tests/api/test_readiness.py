"""/readyz names the dependency that is down with a fixed phrase, never the exception's text
(which can carry a host, a user or a URL with its password); the log has the exception, with
passwords masked."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from alembic import command

from labinterp.app import create_app
from labinterp.config import load_settings
from labinterp.db import alembic_config, upgrade_database
from labinterp.runtime import build_runtime
from tests.api.conftest import assert_problem

SECRET = "s3cret-Pa55"


def _client(tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    settings = load_settings({"LABINTERP_INSTANCE": str(tmp_path / "instance"), **env})
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    return create_app(runtime=build_runtime(settings)).test_client(), settings


def test_ready_says_ok_for_each_dependency(client) -> None:  # type: ignore[no-untyped-def]
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {
        "database": {"ok": True, "detail": "ok"},
        "broker": {"ok": True, "detail": "ok"},
    }


def test_an_unreachable_database_is_named_without_its_url_or_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = _client(
        tmp_path,
        DATABASE_URL=f"postgresql+psycopg://someone:{SECRET}@127.0.0.1:1/none?connect_timeout=1",
    )
    with caplog.at_level(logging.WARNING, logger="labinterp.services.readiness"):
        body = assert_problem(client.get("/readyz"), 503)
    assert body["checks"]["database"] == {"ok": False, "detail": "unreachable"}
    assert body["checks"]["broker"]["ok"] is True
    assert body["detail"] == "not ready: database unreachable"
    text = json.dumps(body)
    for leak in ("OperationalError", "127.0.0.1", "someone", SECRET, "psycopg", "port"):
        assert leak not in text, f"{leak!r} in the answer: {text}"
    logged = [r.getMessage() for r in caplog.records]
    assert any("the database is unreachable: OperationalError" in m for m in logged), logged
    assert not any(SECRET in m for m in logged)


def test_a_database_without_the_schema_or_at_an_old_revision_is_schema_not_current(
    tmp_path: Path,
) -> None:
    client, settings = _client(tmp_path)  # a new SQLite file: no tables at all
    body = assert_problem(client.get("/readyz"), 503)
    assert body["checks"]["database"] == {"ok": False, "detail": "schema not current"}

    command.upgrade(alembic_config(settings.database_url), "0001")  # one release behind
    body = assert_problem(client.get("/readyz"), 503)
    assert body["checks"]["database"] == {"ok": False, "detail": "schema not current"}
    assert body["detail"] == "not ready: database schema not current"

    upgrade_database(settings.database_url)
    assert client.get("/readyz").status_code == 200


def test_an_unreachable_broker_is_named_without_its_url_or_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, settings = _client(
        tmp_path, CELERY_BROKER_URL=f"redis://someone:{SECRET}@127.0.0.1:1/0"
    )
    upgrade_database(settings.database_url)
    with caplog.at_level(logging.WARNING, logger="labinterp.services.readiness"):
        body = assert_problem(client.get("/readyz"), 503)
    assert body["checks"]["broker"] == {"ok": False, "detail": "unreachable"}
    assert body["checks"]["database"] == {"ok": True, "detail": "ok"}
    text = json.dumps(body)
    for leak in ("ConnectionError", "127.0.0.1", "someone", SECRET, "redis://", "111"):
        assert leak not in text, f"{leak!r} in the answer: {text}"
    logged = [r.getMessage() for r in caplog.records]
    assert any("the broker is unreachable" in m for m in logged), logged
    assert not any(SECRET in m for m in logged)
