"""`labinterp clinics webhook` and `labinterp alerts list` as an admin meets them: the secret
only ever on standard input, every change audited without it, a bad URL a one-line error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, select

from labinterp.config import load_settings
from labinterp.models import AuditEvent, ClinicWebhook
from tests.integration.worker_process import REPO

SECRET = "whsec-cli-0123456789abcdef"


def run(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    return subprocess.run(
        [sys.executable, "-m", "labinterp", *args],
        cwd=REPO,
        env={**base, "LABINTERP_INSTANCE": str(tmp_path / "instance")},
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
    )


def _rows(tmp_path: Path, model: type) -> list:  # type: ignore[type-arg]
    settings = load_settings({"LABINTERP_INSTANCE": str(tmp_path / "instance")})
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(model.__table__)).mappings())  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def _webhook_events(tmp_path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in _rows(tmp_path, AuditEvent) if e["action"].startswith("webhook.")]


def test_a_webhook_is_set_with_its_secret_on_stdin_shown_without_it_and_removed(tmp_path):
    assert run(tmp_path, "clinics", "create", "north").returncode == 0
    url = "https://north.example.org/hooks/labinterp"
    done = run(
        tmp_path, "clinics", "webhook", "north", "--url", url, "--secret-stdin", stdin=SECRET
    )
    assert done.returncode == 0, done.stderr
    assert url in done.stdout and SECRET not in done.stdout + done.stderr
    [webhook] = _rows(tmp_path, ClinicWebhook)
    assert webhook["url"] == url and webhook["secret"] == SECRET
    assert webhook["updated_by"].startswith("cli:")

    shown = run(tmp_path, "clinics", "webhook", "north")
    assert shown.returncode == 0 and url in shown.stdout and SECRET not in shown.stdout

    # a new URL alone keeps the secret
    moved = "https://north.example.org/hooks/v2"
    assert run(tmp_path, "clinics", "webhook", "north", "--url", moved).returncode == 0
    [webhook] = _rows(tmp_path, ClinicWebhook)
    assert webhook["url"] == moved and webhook["secret"] == SECRET

    removed = run(tmp_path, "clinics", "webhook", "north", "--remove")
    assert removed.returncode == 0, removed.stderr
    assert _rows(tmp_path, ClinicWebhook) == []

    events = _webhook_events(tmp_path)
    assert [e["action"] for e in events] == ["webhook.set", "webhook.set", "webhook.remove"]
    assert [e["detail"] for e in events[:2]] == [
        {"origin": "https://north.example.org", "secret_changed": True},
        {"origin": "https://north.example.org", "secret_changed": False},
    ]
    assert all(e["actor"].startswith("cli:") and e["clinic_id"] for e in events)
    assert SECRET not in json.dumps([e["detail"] for e in events])


def test_a_bad_url_or_secret_is_a_one_line_error_and_changes_nothing(tmp_path):
    assert run(tmp_path, "clinics", "create", "north").returncode == 0
    cases = [
        (["--url", "ftp://north.example.org/x", "--secret-stdin"], SECRET, "https://"),
        (["--url", "https:///no-host", "--secret-stdin"], SECRET, "no host"),
        (["--url", "north.example.org/hook", "--secret-stdin"], SECRET, "https://"),
        (["--url", "https://user:pw@north.example.org/", "--secret-stdin"], SECRET, "password"),
        (["--url", "https://north.example.org/", "--secret-stdin"], "\n", "secret is empty"),
        (["--url", "https://north.example.org/", "--secret-stdin"], "short", "at least 16"),
        (["--url", "https://north.example.org/"], None, "needs a secret"),
        (["--remove"], None, "not found"),
    ]
    for args, stdin, expected in cases:
        done = run(tmp_path, "clinics", "webhook", "north", *args, stdin=stdin)
        assert done.returncode != 0, args
        assert expected in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert SECRET not in done.stderr
    south = ["clinics", "webhook", "south", "--url", "https://x.example/", "--secret-stdin"]
    unknown = run(tmp_path, *south, stdin=SECRET)
    assert unknown.returncode != 0 and "south" in unknown.stderr
    assert _rows(tmp_path, ClinicWebhook) == [] and _webhook_events(tmp_path) == []


def test_the_secret_is_never_taken_from_the_command_line(tmp_path):
    done = run(tmp_path, "clinics", "webhook", "north", "--url", "https://x.example/", "--secret")
    assert done.returncode != 0 and "--secret-stdin" in done.stderr


def test_alerts_list_says_when_there_are_none(tmp_path):
    assert run(tmp_path, "db", "upgrade").returncode == 0
    done = run(tmp_path, "alerts", "list", "--undelivered")
    assert done.returncode == 0 and done.stdout.strip() == "no undelivered alerts"
