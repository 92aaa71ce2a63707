"""An app on a fresh SQLite file (migrated, not create_all) with one token of each role."""

from __future__ import annotations

import copy
import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from labinterp.app import create_app
from labinterp.config import load_settings
from labinterp.db import upgrade_database
from labinterp.demo import SAMPLE_PANELS
from labinterp.runtime import Runtime, build_runtime
from labinterp.services.accounts import create_clinic, create_token
from labinterp.services.interpretation import interpret_panels


@dataclass
class Tokens:
    clinic: str
    other_clinic: str
    clinician: str
    admin: str


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    settings = load_settings(
        {
            "LABINTERP_INSTANCE": str(tmp_path / "instance"),
            "LABINTERP_SECRET_KEY": "test",
            "LABINTERP_RATE_LIMIT": "0",
            "LABINTERP_AUTH_FAILURE_LIMIT": "0",  # tests that walk every route meet many 401s
        }
    )
    settings.instance_path.mkdir(parents=True)
    upgrade_database(settings.database_url)
    return build_runtime(settings)


@pytest.fixture
def app(runtime: Runtime) -> Flask:
    return create_app(runtime=runtime)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def tokens(runtime: Runtime) -> Tokens:
    with runtime.session_factory() as session:
        create_clinic(session, "north")
        create_clinic(session, "south")
        return Tokens(
            clinic=create_token(session, "clinic", ["north"]).token,
            other_clinic=create_token(session, "clinic", ["south"]).token,
            clinician=create_token(session, "clinician", ["north"]).token,
            admin=create_token(session, "admin", []).token,
        )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem document with this status; its body."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/problem+json"
    body = dict(response.get_json(force=True))
    assert body["status"] == status and body["type"] and body["title"] and body["detail"]
    return body


def sample_panel(**changes: Any) -> dict[str, Any]:
    """API.md's example panel (a deep copy), with top-level fields replaced."""
    panel = copy.deepcopy(SAMPLE_PANELS[0])
    panel["accession"] = "LAB-2026-000123"
    panel.update(changes)
    return panel


@pytest.fixture
def work(runtime: Runtime):  # type: ignore[no-untyped-def]
    """Run the worker's unit of work for queued panels, as the Celery task does."""

    def run(*panel_ids: str) -> None:
        interpret_panels(
            runtime.engine,
            runtime.rulesets,
            [uuid.UUID(i) for i in panel_ids],
            max_attempts=runtime.settings.max_attempts,
        )

    return run


@pytest.fixture
def posted(client: FlaskClient, tokens: Tokens, work: Any) -> Iterator[dict[str, Any]]:
    """The API.md example panel, posted and interpreted."""
    response = client.post("/api/v1/panels", json=sample_panel(), headers=auth(tokens.clinic))
    assert response.status_code == 202, response.get_json()
    work(response.get_json()["id"])
    yield client.get(
        f"/api/v1/panels/{response.get_json()['id']}", headers=auth(tokens.clinic)
    ).get_json()


def now_iso(delta: dt.timedelta = dt.timedelta()) -> str:
    return (dt.datetime.now(dt.UTC) + delta).isoformat()


def post_at_once(app: Flask, token: str, bodies: list[dict[str, Any]]) -> list[int]:
    """POST every body to /api/v1/panels from its own thread, all released at the same moment;
    the status codes, sorted."""
    answers: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(bodies))

    def post(body: dict[str, Any]) -> None:
        client = app.test_client()  # one client per thread, like separate connections
        barrier.wait()
        status = client.post("/api/v1/panels", json=body, headers=auth(token)).status_code
        with lock:
            answers.append(status)

    threads = [threading.Thread(target=post, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(answers)


def differing_bodies(accession: str, count: int) -> list[dict[str, Any]]:
    """``count`` panels of one accession, each with another magnesium value."""
    bodies = []
    for n in range(count):
        body = sample_panel(accession=accession)
        body["results"][0]["value"] = 1.0 + n / 10
        bodies.append(body)
    return bodies


def clinic_app(env: dict[str, str], clinic: str = "c") -> tuple[Runtime, FlaskClient, str]:
    """An app on ``env``'s settings, its database migrated, with one clinic and that clinic's
    token: (runtime, test client, token)."""
    settings = load_settings(env)
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.database_url)
    runtime = build_runtime(settings)
    with runtime.session_factory() as session:
        create_clinic(session, clinic)
        token = create_token(session, "clinic", [clinic]).token
    return runtime, create_app(runtime=runtime).test_client(), token


@contextmanager
def postgres_clinic_app(
    tmp_path: Path, clinic: str = "c"
) -> Iterator[tuple[Runtime, FlaskClient, str]]:
    """:func:`clinic_app` on a fresh PostgreSQL database, dropped afterwards (its pool closed
    first)."""
    from tests.integration.services import fresh_postgres_database

    with fresh_postgres_database() as url:
        runtime, client, token = clinic_app(
            {
                "DATABASE_URL": url,
                "LABINTERP_INSTANCE": str(tmp_path / "instance"),
                "LABINTERP_SECRET_KEY": "test",
            },
            clinic,
        )
        try:
            yield runtime, client, token
        finally:
            runtime.engine.dispose()
