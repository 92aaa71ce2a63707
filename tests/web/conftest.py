"""An app on a fresh SQLite file (migrated) with two clinics, their clinic tokens for posting
panels, and users who sign in to the pages: a clinician of each clinic, an admin."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from labinterp.app import create_app
from labinterp.config import load_settings
from labinterp.db import upgrade_database
from labinterp.models import AuditEvent
from labinterp.runtime import Runtime, build_runtime
from labinterp.services.accounts import create_clinic, create_token
from labinterp.services.interpretation import interpret_panels
from labinterp.services.users import create_user

PASSWORD = "correct horse battery"
NORTH_CLINICIAN = "ana@north.example"
SOUTH_CLINICIAN = "bo@south.example"
ADMIN = "root@labinterp.example"
CRITICAL_K = [("potassium", "6.8", "mmol/L")]  # above the critical limit 6.2
URGENT_K = [("potassium", "2.9", "mmol/L")]  # hypokalemia grade 3: urgent
ROUTINE_D = [("vitamin_d_25oh", "40", "nmol/L")]  # insufficiency, routine
NORMAL_K = [("potassium", "4.2", "mmol/L")]
# phosphate for a 10-year-old of unknown sex: no interval, so not judged (indeterminate)
UNJUDGED_PHOSPHATE = [("phosphate", "1.50", "mmol/L")]
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class World:
    runtime: Runtime
    app: Flask
    tokens: dict[str, str]  # clinic name -> its clinic token

    def post(
        self,
        accession: str,
        results: list[tuple[str, str, str]],
        *,
        clinic: str = "north",
        patient: str | None = None,
        collected_at: str = "2026-11-01T08:00:00Z",
        sex: str = "female",
        age: int = 40,
        **extra: Any,
    ) -> str:
        """Post a panel as the clinic and interpret it; its id."""
        body: dict[str, Any] = {
            "accession": accession,
            "patient": {"id": patient or f"P-{accession}", "sex": sex, "age_years": age},
            "collected_at": collected_at,
            "results": [{"analyte": a, "value": float(v), "unit": u} for a, v, u in results],
            **extra,
        }
        response = self.app.test_client().post(
            "/api/v1/panels", json=body, headers={"Authorization": f"Bearer {self.tokens[clinic]}"}
        )
        assert response.status_code == 202, response.get_json()
        panel_id = str(response.get_json()["id"])
        self.interpret(panel_id)
        return panel_id

    def interpret(self, panel_id: str) -> None:
        """The worker's unit of work for the panel, as the Celery task does it."""
        interpret_panels(
            self.runtime.engine, self.runtime.rulesets, [uuid.UUID(panel_id)], max_attempts=5
        )


def make_runtime(tmp_path: Path, **env: str) -> Runtime:
    settings = load_settings(
        {
            "LABINTERP_INSTANCE": str(tmp_path / "instance"),
            "LABINTERP_SECRET_KEY": "test",
            "LABINTERP_RATE_LIMIT": "0",
            "LABINTERP_AUTH_FAILURE_LIMIT": "0",
            **env,
        }
    )
    settings.instance_path.mkdir(parents=True)
    upgrade_database(settings.database_url)
    return build_runtime(settings)


def populate(runtime: Runtime) -> dict[str, str]:
    with runtime.session_factory() as session:
        create_clinic(session, "north")
        create_clinic(session, "south")
        tokens = {
            "north": create_token(session, "clinic", ["north"]).token,
            "south": create_token(session, "clinic", ["south"]).token,
        }
        create_user(session, NORTH_CLINICIAN, PASSWORD, "clinician", ["north"])
        create_user(session, SOUTH_CLINICIAN, PASSWORD, "clinician", ["south"])
        create_user(session, ADMIN, PASSWORD, "admin", [])
    return tokens


@pytest.fixture
def world(tmp_path: Path) -> World:
    runtime = make_runtime(tmp_path)
    tokens = populate(runtime)
    return World(runtime, create_app(runtime=runtime), tokens)


@pytest.fixture
def client(world: World) -> FlaskClient:
    return world.app.test_client()


def events(world: World, action: str) -> list[AuditEvent]:
    with world.runtime.session_factory() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


def csrf_token(client: FlaskClient, path: str = "/sign-in") -> str:
    """The CSRF token of the form on ``path`` (the session's)."""
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    found = _TOKEN.search(page.get_data(as_text=True))
    assert found, "no csrf_token field on " + path
    return found.group(1)


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/sign-in",
        data={"email": email, "password": password, "csrf_token": csrf_token(client)},
    )


@pytest.fixture
def clinician(client: FlaskClient) -> FlaskClient:
    """The test client, signed in as the north clinic's clinician."""
    response = sign_in(client, NORTH_CLINICIAN)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client
