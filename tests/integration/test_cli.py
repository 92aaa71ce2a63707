"""The `labinterp` command as an operator meets it: clear one-line errors, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.worker_process import REPO


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    return subprocess.run(
        [sys.executable, "-m", "labinterp", *args],
        cwd=REPO,
        env={**base, "LABINTERP_INSTANCE": str(tmp_path / "instance"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_clinics_and_tokens_as_the_readme_uses_them(tmp_path):
    assert run(tmp_path, "db", "upgrade").returncode == 0
    created = run(tmp_path, "clinics", "create", "north")
    assert created.returncode == 0 and "north" in created.stdout
    again = run(tmp_path, "clinics", "create", "north")
    assert again.returncode != 0 and "exists" in again.stderr + again.stdout
    assert run(tmp_path, "clinics", "create", "north", "--if-not-exists").returncode == 0

    token = run(tmp_path, "tokens", "create", "--role", "clinic", "--clinic", "north")
    assert token.returncode == 0
    last = token.stdout.strip().splitlines()[-1]
    assert last.startswith("li_") and " " not in last  # the token alone on the last line

    unknown = run(tmp_path, "tokens", "create", "--role", "clinic", "--clinic", "nowhere")
    assert unknown.returncode != 0 and "nowhere" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_a_malformed_ruleset_stops_serve_and_worker_naming_file_and_line(tmp_path):
    rulesets = tmp_path / "rulesets"
    rulesets.mkdir()
    shutil.copy(REPO / "reference_ranges" / "2026.1.yaml", rulesets)
    path = rulesets / "2026.1.yaml"
    lines = path.read_text().splitlines()
    where = next(n for n, line in enumerate(lines) if line.strip() == "precision: 2")
    lines[where] = lines[where].replace("precision: 2", "precision: two")
    path.write_text("\n".join(lines) + "\n")
    for command in (["serve", "--port", "1"], ["worker"]):
        done = run(tmp_path, *command, LABINTERP_RULESETS_DIR=str(rulesets))
        assert done.returncode == 1, done.stderr
        assert f"2026.1.yaml line {where + 1}:" in done.stderr and "precision" in done.stderr
        assert "Traceback" not in done.stderr


def test_bad_configuration_is_named(tmp_path):
    done = run(tmp_path, "serve", LABINTERP_RATE_LIMIT="lots")
    assert done.returncode == 1 and "LABINTERP_RATE_LIMIT" in done.stderr
    done = run(tmp_path, "worker", LABINTERP_RULESET="1999.1")
    assert done.returncode == 1 and "LABINTERP_RULESET=1999.1" in done.stderr


def test_an_unreachable_database_is_a_clear_error_with_the_password_masked(tmp_path):
    url = "postgresql+psycopg://someone:s3cret@127.0.0.1:1/labinterp"
    for command in (["db", "upgrade"], ["serve", "--port", "1"]):
        done = run(tmp_path, *command, DATABASE_URL=url)
        assert done.returncode == 1
        assert "cannot reach the database" in done.stderr and "s3cret" not in done.stderr
        assert "Traceback" not in done.stderr
