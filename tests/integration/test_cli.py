"""The `labinterp` command as an operator meets it: clear one-line errors, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.integration.services import fresh_postgres_database
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


def test_accounts_on_an_unreachable_database_are_one_line_errors(tmp_path):
    """clinics create, tokens create and worker say the database cannot be reached, password
    masked, like db upgrade and serve: no traceback."""
    url = "postgresql+psycopg://someone:s3cret@127.0.0.1:1/labinterp"
    commands = (["clinics", "create", "north"], ["tokens", "create", "--role", "admin"], ["worker"])
    for command in commands:
        done = run(tmp_path, *command, DATABASE_URL=url)
        assert done.returncode == 1, (command, done.stderr)
        assert "cannot reach the database" in done.stderr and "s3cret" not in done.stderr
        assert "Traceback" not in done.stderr, (command, done.stderr)


def test_the_embedded_default_sets_itself_up_for_clinics_and_tokens(tmp_path):
    """On a new instance folder, `clinics create` works before any `db upgrade`, as `serve`
    does: the SQLite file gets its schema (it was "no such table" with a traceback)."""
    created = run(tmp_path, "clinics", "create", "first")
    assert created.returncode == 0, created.stderr
    token = run(tmp_path, "tokens", "create", "--role", "clinic", "--clinic", "first")
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip().splitlines()[-1].startswith("li_")


@pytest.mark.postgres
def test_accounts_on_a_database_without_the_schema_say_run_db_upgrade(tmp_path):
    with fresh_postgres_database() as url:
        commands = (
            ["clinics", "create", "north"],
            ["tokens", "create", "--role", "admin"],
            ["worker"],  # it would say "ready" and fail every task
        )
        for command in commands:
            done = run(tmp_path, *command, DATABASE_URL=url)
            assert done.returncode == 1, (command, done.stderr)
            assert "run `labinterp db upgrade` first" in done.stderr
            assert "Traceback" not in done.stderr, done.stderr


def test_db_upgrade_without_the_migrations_folder_says_where_it_looked(tmp_path):
    """labinterp installed without its source folder (a wheel) has no migrations/: a
    one-line error naming where it looked, not a FileNotFoundError traceback."""
    alone = tmp_path / "alone"
    for package in ("labinterp", "worker"):
        shutil.copytree(REPO / package, alone / package)
    done = subprocess.run(
        [sys.executable, "-m", "labinterp", "db", "upgrade"],
        cwd=alone,  # `python -m` imports the copy, beside which there is no migrations/
        env={**os.environ, "LABINTERP_INSTANCE": str(tmp_path / "instance")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Alembic migrations not found" in done.stderr and str(alone) in done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_clinics_create_says_what_it_does_in_its_help(tmp_path):
    done = run(tmp_path, "clinics", "--help")
    assert done.returncode == 0
    line = next(line for line in done.stdout.splitlines() if line.strip().startswith("create"))
    assert line.split("create", 1)[1].strip(), done.stdout


def test_demo_at_a_wrong_url_makes_no_demo_clinic(tmp_path):
    """`labinterp demo` without --token makes its token only once a service has answered:
    a wrong --url leaves the instance as it was (it used to create the clinic first)."""
    done = run(tmp_path, "demo", "--url", "http://127.0.0.1:1")
    assert done.returncode == 2
    assert "no labinterp answers at http://127.0.0.1:1" in done.stderr
    assert not (tmp_path / "instance" / "labinterp.db").exists()


def test_an_operator_lists_and_revokes_tokens_and_a_revoked_token_is_401(tmp_path):
    """`tokens list` shows every token without the token itself; `tokens revoke` takes the id
    it shows (or the token) and the API refuses that token from then on."""
    from labinterp.app import create_app
    from labinterp.config import load_settings
    from labinterp.runtime import build_runtime

    run(tmp_path, "clinics", "create", "north")
    kept = run(tmp_path, "tokens", "create", "--role", "clinic", "--clinic", "north")
    lost = run(
        tmp_path, "tokens", "create", "--role", "clinic", "--clinic", "north", "--name", "old"
    )
    kept_token, lost_token = (t.stdout.strip().splitlines()[-1] for t in (kept, lost))
    listed = run(tmp_path, "tokens", "list")
    assert listed.returncode == 0 and kept_token not in listed.stdout
    line = next(x for x in listed.stdout.splitlines() if "'old'" in x)
    assert "active" in line and lost_token[:12] in line and "north" in line
    token_id = line.split()[0]

    revoked = run(tmp_path, "tokens", "revoke", token_id)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout, revoked.stderr
    line = next(x for x in run(tmp_path, "tokens", "list").stdout.splitlines() if "'old'" in x)
    assert "revoked" in line
    assert run(tmp_path, "tokens", "revoke", token_id).returncode == 0  # again: no change
    unknown = run(tmp_path, "tokens", "revoke", "li_not-a-token")
    assert unknown.returncode == 1 and "tokens list" in unknown.stderr

    settings = load_settings({"LABINTERP_INSTANCE": str(tmp_path / "instance")})
    client = create_app(runtime=build_runtime(settings)).test_client()
    assert (
        client.get("/api/v1/panels", headers={"Authorization": f"Bearer {lost_token}"}).status_code
        == 401
    )
    assert (
        client.get("/api/v1/panels", headers={"Authorization": f"Bearer {kept_token}"}).status_code
        == 200
    )


def test_an_operator_lists_failed_panels_and_queues_them_again(tmp_path):
    """`panels failed` shows each failed panel with its code and reason; `panels retry`
    queues them again (attempts reset) and hands them to the broker."""
    import uuid

    from labinterp.app import create_app
    from labinterp.config import load_settings
    from labinterp.runtime import build_runtime
    from labinterp.services.interpretation import interpret_panels
    from tests.api.conftest import sample_panel

    run(tmp_path, "clinics", "create", "north")
    token = run(tmp_path, "tokens", "create", "--role", "clinic", "--clinic", "north")
    token = token.stdout.strip().splitlines()[-1]
    runtime = build_runtime(load_settings({"LABINTERP_INSTANCE": str(tmp_path / "instance")}))
    client = create_app(runtime=runtime).test_client()
    posted = client.post(
        "/api/v1/panels", json=sample_panel(), headers={"Authorization": f"Bearer {token}"}
    )
    panel_id = uuid.UUID(posted.get_json()["id"])
    # a worker without the panel's ruleset takes it up
    interpret_panels(runtime.engine, {}, [panel_id], max_attempts=5)

    listed = run(tmp_path, "panels", "failed")
    assert listed.returncode == 0, listed.stderr
    assert str(panel_id) in listed.stdout and "ruleset_unavailable" in listed.stdout
    assert "north" in listed.stdout and "LAB-2026-000123" in listed.stdout

    nothing_named = run(tmp_path, "panels", "retry")
    assert nothing_named.returncode == 1 and "--all" in nothing_named.stderr
    unknown_code = run(tmp_path, "panels", "retry", "--code", "bogus")
    assert unknown_code.returncode == 2 and "bogus" in unknown_code.stderr
    retried = run(tmp_path, "panels", "retry", "--all")
    assert retried.returncode == 0 and "queued 1 failed panel(s) again" in retried.stdout
    assert run(tmp_path, "panels", "failed").stdout.strip() == "no failed panels"
    document = client.get(
        f"/api/v1/panels/{panel_id}", headers={"Authorization": f"Bearer {token}"}
    ).get_json()
    assert document["status"] == "queued" and document["failure"] is None
    runtime.engine.dispose()


def test_a_token_made_to_expire_says_when_in_the_list_and_is_refused_after(tmp_path):
    """`tokens create --expires-in 90d` stores when it stops working; `tokens list` shows it;
    once that moment has passed the API answers 401 "expired API token"."""
    import datetime as dt

    from sqlalchemy import update

    from labinterp.app import create_app
    from labinterp.config import load_settings
    from labinterp.models import ApiToken
    from labinterp.runtime import build_runtime

    run(tmp_path, "clinics", "create", "north")
    made = run(
        tmp_path, "tokens", "create", "--role", "clinic", "--clinic", "north", "--expires-in", "90d"
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=90)
    assert f"valid until {until:%Y-%m-%d}" in made.stdout
    forever = run(tmp_path, "tokens", "create", "--role", "admin", "--name", "ops")
    assert forever.returncode == 0, forever.stderr
    listed = run(tmp_path, "tokens", "list").stdout
    line = next(x for x in listed.splitlines() if token[:12] in x)
    assert f"expires {until:%Y-%m-%d}" in line and "unused" in line and "active" in line
    assert "never expires" in next(x for x in listed.splitlines() if "'ops'" in x)

    for wrong in ("90", "0d", "3w", "soon"):
        refused = run(tmp_path, "tokens", "create", "--role", "admin", "--expires-in", wrong)
        assert refused.returncode == 2 and "not a duration" in refused.stderr, refused.stderr

    # each lookup reaches the database (no token cache): the expiry is seen at once
    settings = load_settings(
        {"LABINTERP_INSTANCE": str(tmp_path / "instance"), "LABINTERP_TOKEN_CACHE": "0"}
    )
    runtime = build_runtime(settings)
    client = create_app(runtime=runtime).test_client()
    assert (
        client.get("/api/v1/panels", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )
    assert "last used" in next(
        x for x in run(tmp_path, "tokens", "list").stdout.splitlines() if token[:12] in x
    )
    with runtime.session_factory() as session:  # 90 days later
        session.execute(
            update(ApiToken).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )
        session.commit()
    answer = client.get("/api/v1/panels", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401 and answer.get_json()["detail"] == "expired API token"
    assert "expired" in next(
        x for x in run(tmp_path, "tokens", "list").stdout.splitlines() if token[:12] in x
    )


def test_tokens_revoke_refuses_the_secret_itself_without_repeating_it(tmp_path):
    run(tmp_path, "clinics", "create", "north")
    token = run(tmp_path, "tokens", "create", "--role", "clinic", "--clinic", "north")
    secret = token.stdout.strip().splitlines()[-1]
    refused = run(tmp_path, "tokens", "revoke", secret)
    assert refused.returncode == 1
    assert "tokens list" in refused.stderr and "id" in refused.stderr
    assert secret not in refused.stderr + refused.stdout
    assert secret[len("li_") :] not in refused.stderr + refused.stdout
    assert "active" in run(tmp_path, "tokens", "list").stdout  # not revoked
    nonsense = run(tmp_path, "tokens", "revoke", "not-an-id")
    assert nonsense.returncode == 1 and "tokens list" in nonsense.stderr


def test_clinic_and_token_creation_and_revocation_are_audited_without_the_secret(tmp_path):
    """Who (the operating-system user at the CLI), what and the ids; never the token, its
    hash, or the characters `tokens list` shows of it."""
    import getpass

    from sqlalchemy import create_engine, text

    run(tmp_path, "clinics", "create", "north")
    made = run(
        tmp_path, "tokens", "create", "--role", "clinic", "--clinic", "north", "--expires-in", "12h"
    )
    secret = made.stdout.strip().splitlines()[-1]
    listed = run(tmp_path, "tokens", "list").stdout
    token_id = next(x for x in listed.splitlines() if secret[:12] in x).split()[0]
    assert run(tmp_path, "tokens", "revoke", token_id).returncode == 0

    engine = create_engine(f"sqlite:///{tmp_path / 'instance' / 'labinterp.db'}")
    with engine.connect() as connection:
        events = connection.execute(
            text("SELECT actor, role, action, clinic_id, detail FROM audit_events ORDER BY id")
        ).all()
        clinic_id = connection.execute(text("SELECT id FROM clinics")).scalar_one()
        token_hash = connection.execute(text("SELECT token_hash FROM api_tokens")).scalar_one()
    engine.dispose()
    assert [e.action for e in events] == ["clinic.create", "token.create", "token.revoke"]
    assert {e.actor for e in events} == {f"cli:{getpass.getuser()}"}
    assert {e.role for e in events} == {"admin"}
    details = [json.loads(e.detail) for e in events]
    assert details[0] == {
        "clinic_id": str(uuid.UUID(clinic_id)),
        "name": "north",
        "time_zone": "UTC",
    }
    assert details[1]["token_id"] == token_id and details[1]["role"] == "clinic"
    assert details[1]["clinic_ids"] == [str(uuid.UUID(clinic_id))] and details[1]["expires_at"]
    assert details[2]["token_id"] == token_id
    trail = " ".join(str(e) for e in events)
    for secret_part in (secret, secret[3:], secret[:12], token_hash):
        assert secret_part not in trail


def test_demo_refuses_a_url_that_is_not_http(tmp_path):
    """`--url file:///etc/passwd` is not read: only http:// and https:// are opened."""
    done = run(tmp_path, "demo", "--url", "file:///etc/passwd", "--token", "li_x")
    assert done.returncode == 2
    assert "must be an http:// or https:// URL" in done.stderr and "root:" not in done.stdout
