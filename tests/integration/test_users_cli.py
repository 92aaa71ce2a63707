"""Users as an operator makes them: `labinterp users create|list|disable`, the password from
standard input, hashed with argon2id, never shown; a disabled user's token stops working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, select

from labinterp.config import load_settings
from labinterp.models import AuditEvent, User
from tests.integration.worker_process import REPO

PASSWORD = "correct horse battery staple"


def run(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    return subprocess.run(
        [sys.executable, "-m", "labinterp", *args],
        cwd=REPO,
        env={**base, "LABINTERP_INSTANCE": str(tmp_path / "instance")},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _users(tmp_path: Path) -> list[User]:
    settings = load_settings({"LABINTERP_INSTANCE": str(tmp_path / "instance")})
    engine = create_engine(settings.database_url)
    with engine.connect() as connection:
        return list(connection.execute(select(User)).all())  # type: ignore[arg-type]


def test_an_operator_creates_lists_and_disables_a_clinician(tmp_path: Path) -> None:
    assert run(tmp_path, "clinics", "create", "north").returncode == 0
    made = run(
        tmp_path,
        *("users", "create", "Dr.Ada@Example.org", "--role", "clinician", "--clinic", "north"),
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert made.returncode == 0, made.stderr
    assert "dr.ada@example.org" in made.stdout and PASSWORD not in made.stdout + made.stderr
    [user] = _users(tmp_path)
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash

    listed = run(tmp_path, "users", "list")
    assert "dr.ada@example.org" in listed.stdout and "clinician" in listed.stdout
    assert "north" in listed.stdout and "active" in listed.stdout

    token = run(tmp_path, "tokens", "create", "--role", "clinician", "--user", "dr.ada@example.org")
    assert token.returncode == 0, token.stderr

    disabled = run(tmp_path, "users", "disable", "DR.ADA@example.org")
    assert disabled.returncode == 0 and "disabled" in disabled.stdout
    assert "disabled" in run(tmp_path, "users", "list").stdout
    refused = run(
        tmp_path, "tokens", "create", "--role", "clinician", "--user", "dr.ada@example.org"
    )
    assert refused.returncode != 0 and "disabled" in refused.stderr

    settings = load_settings({"LABINTERP_INSTANCE": str(tmp_path / "instance")})
    with create_engine(settings.database_url).connect() as connection:
        actions = [a for (a,) in connection.execute(select(AuditEvent.action))]
        details = " ".join(str(d) for (d,) in connection.execute(select(AuditEvent.detail)))
    assert {"user.create", "user.disable"} <= set(actions)
    assert PASSWORD not in details


def test_users_create_refuses_what_would_make_a_bad_account(tmp_path: Path) -> None:
    assert run(tmp_path, "clinics", "create", "north").returncode == 0
    cases = {
        "short password": (["a@b.org", "--role", "clinician", "--clinic", "north"], "short"),
        "not an email": (["ada", "--role", "clinician", "--clinic", "north"], PASSWORD),
        "no clinic": (["a@b.org", "--role", "clinician"], PASSWORD),
        "unknown clinic": (["a@b.org", "--role", "clinician", "--clinic", "nowhere"], PASSWORD),
    }
    words = {
        "short password": "at least 10 characters",
        "not an email": "not an email address",
        "no clinic": "at least one clinic",
        "unknown clinic": "nowhere",
    }
    for name, (args, password) in cases.items():
        done = run(tmp_path, "users", "create", *args, "--password-stdin", stdin=password + "\n")
        assert done.returncode != 0, name
        assert words[name] in done.stderr, (name, done.stderr)
        assert "Traceback" not in done.stderr
    assert _users(tmp_path) == []
    twice = ["users", "create", "a@b.org", "--role", "admin", "--password-stdin"]
    assert run(tmp_path, *twice, stdin=PASSWORD + "\n").returncode == 0
    again = run(tmp_path, *twice, stdin=PASSWORD + "\n")
    assert again.returncode != 0 and "already exists" in again.stderr
    no_terminal = run(tmp_path, "users", "create", "c@b.org", "--role", "admin")
    assert no_terminal.returncode != 0 and "--password-stdin" in no_terminal.stderr
