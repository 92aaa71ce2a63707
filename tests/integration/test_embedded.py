"""The embedded default: `labinterp serve` alone runs API + worker on SQLite and a folder broker."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.api.conftest import sample_panel
from tests.integration.worker_process import (
    REPO,
    free_port,
    http_json,
    labinterp_cli,
    labinterp_process,
    wait_until,
)

pytestmark = pytest.mark.worker


def _env(instance: Path) -> dict[str, str]:
    # empty values mean "use the default": SQLite under the instance folder, filesystem broker
    return {"LABINTERP_INSTANCE": str(instance), "DATABASE_URL": "", "CELERY_BROKER_URL": ""}


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_serve_alone_interprets_a_posted_panel_and_demo_shows_what_was_flagged(tmp_path):
    env = _env(tmp_path / "instance")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with labinterp_process(["serve", "--port", str(port)], env, tmp_path / "serve.log"):
        wait_until(lambda: _healthy(base), 60, 0.2, "serve to be ready")
        labinterp_cli(env, "clinics", "create", "embedded")
        token = (
            labinterp_cli(env, "tokens", "create", "--role", "clinic", "--clinic", "embedded")
            .strip()
            .splitlines()[-1]
        )

        status, body = http_json("POST", f"{base}/api/v1/panels", token, sample_panel())
        assert status == 202 and body["status"] == "queued"
        started = time.monotonic()
        document = wait_until(
            lambda: (
                (d := http_json("GET", f"{base}/api/v1/panels/{body['id']}", token)[1])["status"]
                != "queued"
                and d
            ),
            30,
            0.02,
            "the panel to be interpreted",
        )
        print(f"embedded default: interpreted {time.monotonic() - started:.3f} s after the 202")
        assert document["status"] == "interpreted"
        assert "hypomagnesemia" in [f["code"] for f in document["interpretation"]["findings"]]

        demo = subprocess.run(
            [sys.executable, "-m", "labinterp", "demo", "--url", base, "--token", token],
            cwd=REPO,
            env={**__import__("os").environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "hypomagnesemia" in demo.stdout and "hyperkalemia" in demo.stdout
        assert "DEMO-0003" in demo.stdout and "normal" in demo.stdout
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log, log[-4000:]
