"""No patient data in any log line: a real `labinterp serve` (gunicorn, with its access log)
and a real `labinterp worker --loglevel DEBUG` on PostgreSQL and Redis take a broad corpus of
traffic, good and bad, then every line they logged is searched for what was posted.

What counts as patient data here: the patient ids, birth dates, result values (as posted,
digits chosen so that they cannot occur by chance) and free-text notes. Accessions are the
laboratory's specimen numbers, which the lab links to a patient: they are kept out of the logs
too (panel UUIDs are what logs name), and searched for like the rest.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from labinterp.db import upgrade_database
from tests.integration.redis_service import require_redis
from tests.integration.services import fresh_postgres_database
from tests.integration.worker_process import (
    free_port,
    labinterp_cli,
    labinterp_process,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]

PANELS = 6


def _request(
    method: str, url: str, token: str | None = None, body: Any = None, raw: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    """One request over real HTTP: (status, parsed body), errors included."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _ready(base: str) -> bool:
    try:
        return _request("GET", f"{base}/readyz")[0] == 200
    except OSError:  # not listening yet
        return False


class Corpus:
    """Panels with values nobody else logs: every string posted is remembered."""

    def __init__(self) -> None:
        self.secrets: dict[str, set[str]] = {
            "patient id": set(),
            "birth date": set(),
            "value": set(),
            "note": set(),
            "accession": set(),
        }

    def panel(self, n: int, patient: str | None = None) -> dict[str, Any]:
        patient = patient or f"PHI-{uuid.uuid4()}"
        birth = f"19{31 + n:02d}-0{1 + n % 9}-{11 + n:02d}"
        accession = f"ACC-{uuid.uuid4().hex[:16]}"
        # values with 7 to 9 significant digits: no timing, port or count prints these
        values = {
            "magnesium": f"0.{7318259 + 1013 * n}",
            "potassium": f"3.{4192837 + 877 * n}",
            "sodium": f"13{n}.{5938271 + 311 * n}",
        }
        note = f"note-{uuid.uuid4().hex}"
        self.secrets["patient id"].add(patient)
        self.secrets["birth date"].add(birth)
        self.secrets["value"].update(values.values())
        self.secrets["note"].add(note)
        self.secrets["accession"].add(accession)
        return {
            "accession": accession,
            "patient": {"id": patient, "sex": "female", "birth_date": birth},
            "collected_at": "2026-11-20T08:30:00Z",
            "results": [
                {"analyte": name, "value": float(text), "unit": "mmol/L"}
                for name, text in values.items()
            ],
            "context": {"symptoms": ["muscle_weakness"], "notes": note},
        }

    def value(self, text: str) -> float:
        self.secrets["value"].add(text)
        return float(text)


def test_no_posted_patient_data_reaches_any_log_line(tmp_path: Path) -> None:
    broker = require_redis()
    with fresh_postgres_database() as database_url:
        upgrade_database(database_url)
        env = {
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker,
            "LABINTERP_INSTANCE": str(tmp_path / "instance"),
        }
        labinterp_cli(env, "clinics", "create", "phi-clinic")

        def token(*args: str) -> str:
            return labinterp_cli(env, "tokens", "create", *args).strip().splitlines()[-1]

        clinic = token("--role", "clinic", "--clinic", "phi-clinic")
        admin = token("--role", "admin")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve_log, worker_log = tmp_path / "serve.log", tmp_path / "worker.log"
        corpus = Corpus()
        answers: dict[int, int] = {}

        def call(method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
            status, body = _request(method, base + path, **kwargs)
            answers[status] = answers.get(status, 0) + 1
            return status, body

        with (
            labinterp_process(
                ["serve", "--no-worker", "--port", str(port), "--workers", "2"], env, serve_log
            ),
            labinterp_process(
                ["worker", "--loglevel", "DEBUG", "--concurrency", "2"], env, worker_log
            ),
        ):
            wait_until(lambda: _ready(base), 60, 0.2, "serve to be ready")
            panels = [corpus.panel(n) for n in range(PANELS)]
            ids = []
            for panel in panels:
                status, body = call("POST", "/api/v1/panels", token=clinic, body=panel)
                assert status == 202, body
                ids.append(body["id"])
            first, patient = panels[0], panels[0]["patient"]["id"]

            assert call("POST", "/api/v1/panels", token=clinic, body=first)[0] == 200
            conflict = json.loads(json.dumps(first))
            conflict["results"][0]["value"] = corpus.value("0.8861427")
            assert call("POST", "/api/v1/panels", token=clinic, body=conflict)[0] == 409
            broken = json.dumps(corpus.panel(90)).encode()[:-7]  # cut short: not JSON
            assert call("POST", "/api/v1/panels", token=clinic, raw=broken)[0] == 400
            invalid = corpus.panel(91)
            invalid["results"][0]["value"] = -corpus.value("0.6619273")
            invalid["results"].append(
                {"analyte": "unobtainium", "value": corpus.value("7.7172839"), "unit": "mg/dL"}
            )
            status, body = call("POST", "/api/v1/panels", token=clinic, body=invalid)
            assert status == 422, body
            future = corpus.panel(92)
            future["collected_at"] = "2099-01-01T00:00:00Z"
            assert call("POST", "/api/v1/panels", token=clinic, body=future)[0] == 422
            revision = corpus.panel(0, patient=patient)
            revision["accession"] = first["accession"]
            status, body = call(
                "POST", f"/api/v1/panels/{ids[0]}/revisions", token=clinic, body=revision
            )
            assert status == 202, body

            query_paths = [
                f"/api/v1/panels?patient_id={patient}",
                f"/api/v1/panels?accession={first['accession']}",
                f"/api/v1/patients/{patient}/trend?analyte=magnesium",
                f"/api/v1/panels?patient_id={patient}&collected_from=1931-01-11",
            ]
            for path in query_paths:
                assert call("GET", path, token=clinic)[0] == 200, path
            assert call("GET", f"/api/v1/panels?patient_id={patient}", token=admin)[0] == 200
            assert call("GET", f"/api/v1/patients/{patient}", token=clinic)[0] == 404
            assert (
                call("GET", f"/api/v1/patients/{patient}/trend?analyte=x", token=clinic)[0] == 422
            )
            assert call("GET", f"/api/v1/patients/{patient}/trend", token="li_wrong")[0] == 401
            forbidden = corpus.panel(93)
            assert call("POST", "/api/v1/panels", token=admin, body=forbidden)[0] == 403

            def all_interpreted() -> bool:
                for panel_id in ids:
                    status, body = _request("GET", f"{base}/api/v1/panels/{panel_id}", clinic)
                    if status != 200 or body["status"] != "interpreted":
                        return False
                    if panel_id == ids[0] and body["revision"] != 2:
                        return False
                return True

            wait_until(all_interpreted, 90, 0.5, "the worker to interpret every panel")

        lines = {
            "serve": serve_log.read_text(errors="replace").splitlines(),
            "worker": worker_log.read_text(errors="replace").splitlines(),
        }
    leaks = [
        f"{where}: {kind} {secret!r} in {line!r}"
        for where, logged in lines.items()
        for line in logged
        for kind, secrets in corpus.secrets.items()
        for secret in secrets
        if secret in line
    ]
    access = [line for line in lines["serve"] if '"GET ' in line or '"POST ' in line]
    report = (
        f"posted {sum(len(s) for s in corpus.secrets.values())} distinct strings "
        f"({', '.join(f'{len(s)} {kind}s' for kind, s in corpus.secrets.items())}) in "
        f"{sum(answers.values())} requests (by status: {dict(sorted(answers.items()))}); "
        f"scanned {len(lines['serve'])} lines of serve (access log: {len(access)}) and "
        f"{len(lines['worker'])} lines of the DEBUG worker: {len(leaks)} leak(s)"
    )
    print(f"\n{report}")
    assert not leaks, report + "\n" + "\n".join(leaks[:40])
    # the logs were real ones: every request is in the access log, the worker ran the tasks
    assert len(access) >= sum(answers.values()), report
    assert any('"GET /api/v1/patients/{id}/trend HTTP/1.1" 200' in line for line in access)
    interpreted = sum(
        int(found.group(1))
        for line in lines["worker"]
        if (found := re.search(r"panel\(s\): (\d+) interpreted", line))
    )
    assert interpreted >= PANELS, report
