"""Re-processing jobs worked by real `labinterp worker` processes: on PostgreSQL and Redis a
worker SIGKILLed mid-job and started again finishes it with every panel interpreted exactly
once, the dry run before it counting the same; a cancelled job stops; and on the embedded
default `labinterp reprocess --wait` runs a small job end to end."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from labinterp.config import load_settings
from labinterp.db import upgrade_database
from labinterp.models import Interpretation, ReprocessingJob
from labinterp.runtime import Runtime, build_runtime
from labinterp.services import reprocessing
from labinterp.services.audit import Actor
from tests.integration.redis_service import require_redis
from tests.integration.reprocessing_data import EDGES, edge_csv, load_edges
from tests.integration.services import fresh_postgres_database
from tests.integration.worker_process import REPO, labinterp_process, wait_until

ADMIN = Actor(name="admin:test", role="admin")
COPIES = 40  # 600 panels
CHUNK = "10"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Runtime, dict[str, str]]]:
    """A migrated PostgreSQL database with 600 panels interpreted under 2026.1, a Redis
    broker, and the environment a worker needs for them."""
    broker = require_redis()
    with fresh_postgres_database() as url:
        env = {
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": broker,
            "LABINTERP_INSTANCE": str(tmp_path / "instance"),
            "LABINTERP_REPROCESS_CHUNK": CHUNK,
        }
        settings = load_settings(env)
        upgrade_database(settings.database_url)
        runtime = build_runtime(settings)
        load_edges(runtime, COPIES)
        yield runtime, env
        runtime.engine.dispose()


def start(runtime: Runtime, dry_run: bool) -> uuid.UUID:
    with runtime.session_factory() as session:
        job = reprocessing.start_job(
            session,
            runtime.dispatcher,
            ADMIN,
            runtime.rulesets,
            reprocessing.JobRequest("2026.2", dry_run),
            dt.datetime.now(dt.UTC),
        )
        return job.id


def job_of(runtime: Runtime, job_id: uuid.UUID) -> ReprocessingJob:
    with runtime.session_factory() as session:
        job = reprocessing.get_job(session, job_id)
        session.expunge(job)
        return job


def rows_of(runtime: Runtime, job_id: uuid.UUID) -> tuple[int, int]:
    """(interpretation rows the job wrote, distinct panels among them)."""
    with runtime.session_factory() as session:
        row = session.execute(
            select(func.count(), func.count(func.distinct(Interpretation.panel_id))).where(
                Interpretation.job_id == job_id
            )
        ).one()
        return int(row[0]), int(row[1])


def counts(job: ReprocessingJob) -> dict[str, object]:
    summary = dict(job.summary or {})
    summary.pop("samples")
    return {"total": job.total, "changed": job.changed, "failed": job.failed, **summary}


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
def test_a_worker_killed_mid_job_and_started_again_interprets_every_panel_exactly_once(
    stack: tuple[Runtime, dict[str, str]], tmp_path: Path
) -> None:
    runtime, env = stack
    panels = len(EDGES) * COPIES
    with labinterp_process(["worker", "--concurrency", "1"], env, tmp_path / "w0.log"):
        dry_id = start(runtime, dry_run=True)
        wait_until(lambda: job_of(runtime, dry_id).status == "done", 120, 0.1, "the dry run")
    dry = job_of(runtime, dry_id)
    assert rows_of(runtime, dry_id) == (0, 0)

    real_id = start(runtime, dry_run=False)
    with labinterp_process(["worker", "--concurrency", "1"], env, tmp_path / "w1.log") as one:
        wait_until(lambda: job_of(runtime, real_id).processed >= 50, 120, 0.01, "progress")
        os.killpg(one.pid, signal.SIGKILL)
        one.wait(10)
    killed_at = job_of(runtime, real_id).processed
    assert killed_at < panels, "the job ended before the worker was killed: nothing was tested"
    assert rows_of(runtime, real_id) == (killed_at, killed_at)  # progress is the writes

    # the sweeper sends again the chunk the killed worker held, once the queue has drained
    again = {**env, "LABINTERP_SWEEP_AFTER": "3", "LABINTERP_SWEEP_EVERY": "1"}
    with labinterp_process(["worker", "--beat", "--concurrency", "2"], again, tmp_path / "w2.log"):
        wait_until(lambda: job_of(runtime, real_id).status == "done", 120, 0.2, "the real run")
    real = job_of(runtime, real_id)
    print(f"killed at {killed_at} of {panels} panels; finished {real.processed}")
    assert (real.processed, real.failed) == (panels, 0)
    assert rows_of(runtime, real_id) == (panels, panels), "one interpretation per panel"
    assert counts(dry) == counts(real), "the dry run counted what the real run did"
    assert real.changed == sum(e.changed for e in EDGES) * COPIES
    with runtime.session_factory() as session:
        earlier = session.scalar(select(func.count()).where(Interpretation.job_id.is_(None)))
    assert earlier == panels, "every 2026.1 interpretation is kept"


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
def test_a_job_cancelled_while_a_worker_runs_it_stops_within_a_chunk(
    stack: tuple[Runtime, dict[str, str]], tmp_path: Path
) -> None:
    runtime, env = stack
    env = {**env, "LABINTERP_REPROCESS_CHUNK": "5"}
    with labinterp_process(["worker", "--concurrency", "1"], env, tmp_path / "w.log"):
        job_id = start(runtime, dry_run=False)
        wait_until(lambda: job_of(runtime, job_id).processed > 0, 120, 0.01, "progress")
        with runtime.session_factory() as session:
            reprocessing.cancel_job(session, ADMIN, job_id, dt.datetime.now(dt.UTC))
        stopped = job_of(runtime, job_id)
        time.sleep(2)  # the chunks still queued are taken and do nothing
        later = job_of(runtime, job_id)
    assert later.status == "cancelled"
    assert later.processed == stopped.processed < stopped.total
    assert rows_of(runtime, job_id) == (later.processed, later.processed)


@pytest.mark.worker
def test_on_the_embedded_default_reprocess_wait_runs_a_dry_run_and_a_real_run(
    tmp_path: Path,
) -> None:
    """As the README does it: import, a worker, `reprocess --dry-run --wait`, then for real."""
    instance = tmp_path / "instance"
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env = {**base, "LABINTERP_INSTANCE": str(instance)}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "labinterp", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    history = tmp_path / "edges.csv"
    history.write_text(edge_csv())
    cli("db", "upgrade")
    cli("clinics", "create", "north")
    cli("import", str(history), "--clinic", "north")
    database = instance / "labinterp.db"

    def scalar(sql: str) -> int:
        with sqlite3.connect(database) as conn:
            return int(conn.execute(sql).fetchone()[0])

    with labinterp_process(["worker"], {"LABINTERP_INSTANCE": str(instance)}, tmp_path / "w.log"):
        wait_until(
            lambda: scalar("SELECT count(*) FROM interpretations") == len(EDGES),
            60,
            0.2,
            "the imported panels interpreted",
        )
        dry = cli("reprocess", "--ruleset", "2026.2", "--dry-run", "--wait")
        real = cli("reprocess", "--ruleset", "2026.2", "--clinic", "north", "--wait")
    changed = sum(e.changed for e in EDGES)
    for out in (dry, real):
        assert ": done" in out, out
        assert f"│ changed          │ {changed:>5} │" in out, out
        assert "vitamin_d_deficiency" in out and "hypomagnesemia" in out
    assert scalar("SELECT count(*) FROM interpretations WHERE job_id IS NOT NULL") == len(EDGES)
    assert scalar("SELECT count(*) FROM interpretations WHERE job_id IS NULL") == len(EDGES)
