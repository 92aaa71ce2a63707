"""Rulesets as an operator handles them: `labinterp rulesets list | validate FILE | activate
VERSION`. Activation is the API's (same service, audited `ruleset.activate`); validation is
startup's (same loader, every error naming file and line)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, select

from labinterp.config import load_settings
from labinterp.models import AuditEvent
from tests.integration.worker_process import REPO


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    base.pop("LABINTERP_RULESET", None)
    base.pop("LABINTERP_RULESETS_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "labinterp", *args],
        cwd=REPO,
        env={**base, "LABINTERP_INSTANCE": str(tmp_path / "instance")},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _activations(tmp_path: Path) -> list[AuditEvent]:
    settings = load_settings({"LABINTERP_INSTANCE": str(tmp_path / "instance")})
    engine = create_engine(settings.database_url)
    with engine.connect() as connection:
        rows = connection.execute(select(AuditEvent).where(AuditEvent.action == "ruleset.activate"))
        return list(rows.all())  # type: ignore[arg-type]


def _marked(listing: str) -> list[str]:
    """The versions `rulesets list` marks active (`*` in the first column)."""
    return [line.split()[1] for line in listing.splitlines() if line.startswith("*")]


def test_list_shows_every_version_and_marks_the_default_active(tmp_path: Path) -> None:
    listed = run(tmp_path, "rulesets", "list")
    assert listed.returncode == 0, listed.stderr
    assert "2026.1" in listed.stdout and "2026.2" in listed.stdout
    assert "2026-01-15" in listed.stdout  # 2026.1's published date, beside its title
    assert _marked(listed.stdout) == ["2026.1"]


def test_activate_changes_the_active_ruleset_and_is_audited_with_the_operator(
    tmp_path: Path,
) -> None:
    done = run(tmp_path, "rulesets", "activate", "2026.2")
    assert done.returncode == 0, done.stderr
    assert "2026.2" in done.stdout
    assert _marked(run(tmp_path, "rulesets", "list").stdout) == ["2026.2"]
    [event] = _activations(tmp_path)
    assert event.actor.startswith("cli:") and event.role == "admin"
    assert event.detail == {"version": "2026.2", "previous": None}


def test_an_unknown_version_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    done = run(tmp_path, "rulesets", "activate", "1999.9")
    assert done.returncode == 1
    assert "1999.9" in done.stderr and "2026.1" in done.stderr and "2026.2" in done.stderr
    assert "Traceback" not in done.stderr
    assert _marked(run(tmp_path, "rulesets", "list").stdout) == ["2026.1"]
    assert _activations(tmp_path) == []


def test_validate_says_ok_with_a_summary_for_a_good_file(tmp_path: Path) -> None:
    done = run(tmp_path, "rulesets", "validate", str(REPO / "reference_ranges" / "2026.1.yaml"))
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert line.startswith("OK ") and "2026.1" in line and "analytes" in line


def test_validate_names_file_and_line_of_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "2026.1.yaml"
    shutil.copy(REPO / "reference_ranges" / "2026.1.yaml", path)
    lines = path.read_text().splitlines()
    where = next(n for n, line in enumerate(lines) if line.strip() == "precision: 2")
    lines[where] = lines[where].replace("precision: 2", "precision: two")
    path.write_text("\n".join(lines) + "\n")
    assert "precision: two" in path.read_text()  # the edit happened

    done = run(tmp_path, "rulesets", "validate", str(path))
    assert done.returncode == 1
    assert f"2026.1.yaml line {where + 1}:" in done.stderr and "precision" in done.stderr
    assert "Traceback" not in done.stderr and "OK" not in done.stdout
