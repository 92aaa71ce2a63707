"""Critical-value alerts sent by real worker processes: `labinterp worker` on PostgreSQL and
Redis, and `labinterp serve` on the embedded default, each POSTing to a real local webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from labinterp.config import load_settings
from labinterp.db import upgrade_database
from labinterp.models import Alert, AlertAttempt, AlertStatus, Panel, PanelStatus
from labinterp.runtime import Runtime, build_runtime
from labinterp.services.accounts import CLI, create_clinic, create_token
from labinterp.services.webhooks import set_webhook
from tests.api.conftest import sample_panel
from tests.integration.redis_service import require_redis
from tests.integration.services import fresh_postgres_database
from tests.integration.webhook_receiver import Received, webhook_receiver
from tests.integration.worker_process import (
    REPO,
    free_port,
    http_json,
    labinterp_cli,
    labinterp_process,
    wait_until,
)

pytestmark = pytest.mark.worker

SECRET = "whsec-e2e-0123456789abcdef"
PATIENT = "P-0042"  # sample_panel's patient: never in a worker's log


def critical_panel(accession: str) -> dict[str, Any]:
    """Potassium 2.4 mmol/L: below the critical limit 2.8 (Kost 1990), a critical value."""
    body = sample_panel(accession=accession)
    body["results"][1] = {"loinc": "2823-3", "value": 2.4, "unit": "mmol/L"}
    return body


def set_webhook_by_command(env: dict[str, str], clinic: str, url: str) -> None:
    """`labinterp clinics webhook` as an admin runs it: the secret on standard input."""
    command = ["clinics", "webhook", clinic, "--url", url, "--secret-stdin"]
    done = subprocess.run(
        [sys.executable, "-m", "labinterp", *command],
        cwd=REPO,
        env={**os.environ, **env},
        input=SECRET + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def assert_signed_alert(request: Received, panel_id: str, accession: str) -> dict[str, Any]:
    fields = dict(
        part.split("=", 1) for part in request.headers["X-Labinterp-Signature"].split(",")
    )
    signed = fields["t"].encode() + b"." + request.body
    assert hmac.compare_digest(
        fields["v1"], hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    )
    alert = dict(json.loads(request.body))
    assert alert["panel_id"] == panel_id and alert["accession"] == accession
    assert alert["patient_id"] == PATIENT and "hypokalemia" in alert["finding_codes"]
    assert alert["link"].endswith(f"/review/panels/{panel_id}")
    assert request.headers["X-Labinterp-Alert-Id"] == alert["id"]
    return alert


@pytest.fixture
def production(tmp_path: Path) -> Iterator[tuple[dict[str, str], Runtime, Any, str]]:
    broker = require_redis()
    with fresh_postgres_database() as database_url:
        upgrade_database(database_url)
        env = {
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker,
            "LABINTERP_INSTANCE": str(tmp_path / "instance"),
            "LABINTERP_RATE_LIMIT": "0",
            "LABINTERP_PUBLIC_URL": "https://labinterp.example.org/",
        }
        runtime = build_runtime(load_settings(env))
        from labinterp.app import create_app

        client = create_app(runtime=runtime).test_client()
        with runtime.session_factory() as session:
            create_clinic(session, "pg-clinic")
            token = create_token(session, "clinic", ["pg-clinic"]).token
        yield env, runtime, client, token
        runtime.engine.dispose()


def _post(client: Any, token: str, body: dict[str, Any]) -> str:
    response = client.post(
        "/api/v1/panels", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["id"])


def _panel_status(runtime: Runtime, panel_id: str) -> str | None:
    with runtime.session_factory() as session:
        return session.scalar(select(Panel.status).where(Panel.id == uuid.UUID(panel_id)))


def _alerts(runtime: Runtime) -> list[Alert]:
    with runtime.session_factory() as session:
        rows = list(session.scalars(select(Alert)).all())
        session.expunge_all()
        return rows


def _attempts(runtime: Runtime) -> list[AlertAttempt]:
    with runtime.session_factory() as session:
        rows = list(session.scalars(select(AlertAttempt)).all())
        session.expunge_all()
        return rows


@pytest.mark.postgres
@pytest.mark.redis
def test_a_worker_posts_one_signed_alert_for_a_critical_panel(production, tmp_path):
    env, runtime, client, token = production
    log = tmp_path / "worker.log"
    with webhook_receiver([200]) as receiver:
        set_webhook_by_command(env, "pg-clinic", receiver.url)
        panel_id = _post(client, token, critical_panel("E2E-CRIT"))
        with labinterp_process(["worker", "--concurrency", "2"], env, log):
            wait_until(lambda: receiver.count() >= 1, 60, 0.1, "the webhook to be called")
            wait_until(
                lambda: [a.status for a in _alerts(runtime)] == [AlertStatus.DELIVERED],
                30,
                0.1,
                "the alert to be recorded delivered",
            )
        [request] = receiver.requests
        alert = assert_signed_alert(request, panel_id, "E2E-CRIT")
        assert alert["link"] == f"https://labinterp.example.org/review/panels/{panel_id}"
        assert _panel_status(runtime, panel_id) == PanelStatus.INTERPRETED
        [attempt] = _attempts(runtime)
        assert attempt.status_code == 200
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]
    assert f"alert {alert['id']} delivered" in text
    assert PATIENT not in text and "E2E-CRIT" not in text  # no patient data in the log


@pytest.mark.postgres
@pytest.mark.redis
def test_a_webhook_that_hangs_holds_up_no_interpretation(production, tmp_path):
    """The webhook takes the alert's POST and never answers: the critical panel is
    interpreted regardless, a panel posted meanwhile is interpreted while the POST still
    hangs, and the try ends as "timed out" after the client's timeout."""
    env, runtime, client, token = production
    log = tmp_path / "worker.log"
    with webhook_receiver([200], hold=True) as receiver:
        with runtime.session_factory() as session:
            set_webhook(session, "pg-clinic", receiver.url, SECRET, actor=CLI)
        with labinterp_process(["worker", "--concurrency", "2"], env, log):
            critical = _post(client, token, critical_panel("HANG-CRIT"))
            wait_until(
                lambda: _panel_status(runtime, critical) == PanelStatus.INTERPRETED,
                60,
                0.1,
                "the critical panel to be interpreted",
            )
            wait_until(lambda: receiver.count() == 1, 60, 0.1, "the alert's POST to arrive")
            meanwhile = _post(client, token, sample_panel(accession="HANG-NEXT"))
            wait_until(
                lambda: _panel_status(runtime, meanwhile) == PanelStatus.INTERPRETED,
                60,
                0.1,
                "the next panel to be interpreted",
            )
            # the POST was still hanging then: its try is recorded when the client gives up
            assert _attempts(runtime) == []
            [attempt] = wait_until(
                lambda: _attempts(runtime), 60, 0.2, "the hanging try to be recorded"
            )
            assert attempt.error == "timed out" and attempt.status_code is None
            [alert] = _alerts(runtime)
            assert alert.status == AlertStatus.PENDING and alert.attempts == 1
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]


def test_serve_on_the_embedded_default_sends_a_critical_panels_alert(tmp_path):
    """`labinterp serve` alone (SQLite, the folder broker): its worker takes the alerts'
    queue too."""
    env = {"LABINTERP_INSTANCE": str(tmp_path / "instance"), "DATABASE_URL": ""}
    env["CELERY_BROKER_URL"] = ""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with webhook_receiver([200]) as receiver:
        labinterp_cli(env, "db", "upgrade")
        labinterp_cli(env, "clinics", "create", "embedded")
        token = labinterp_cli(
            env, "tokens", "create", "--role", "clinic", "--clinic", "embedded"
        ).splitlines()[-1]
        set_webhook_by_command(env, "embedded", receiver.url)
        with labinterp_process(["serve", "--port", str(port)], env, tmp_path / "serve.log"):
            status, body = wait_until(
                lambda: _try_post(base, token, critical_panel("EMB-CRIT")),
                60,
                0.2,
                "serve to take a panel",
            )
            assert status == 202
            wait_until(lambda: receiver.count() >= 1, 60, 0.1, "the webhook to be called")
        [request] = receiver.requests
        assert_signed_alert(request, body["id"], "EMB-CRIT")
    text = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in text, text[-4000:]


def _try_post(base: str, token: str, panel: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    try:
        return http_json("POST", f"{base}/api/v1/panels", token, panel)
    except OSError:  # not listening yet
        return None
