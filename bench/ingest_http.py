"""Ingest over real HTTP, loaded with wrk: `labinterp serve --no-worker` beside a bare Flask
JSON endpoint under the same gunicorn settings, in the same run.

    .venv/bin/python bench/ingest_http.py            # needs Debian's wrk (apt-get install wrk)

Three servers, one after the other, each driven by wrk (BENCH_THREADS threads, BENCH_CONNECTIONS
connections, BENCH_SECONDS seconds; a Lua script gives every request an accession of its own):

* the baseline: a bare Flask endpoint (bench/bare_app.py) that parses the panel and answers 202;
* `labinterp serve --no-worker` on PostgreSQL + Redis (a scratch database, Redis database 12);
* `labinterp serve --no-worker` on the embedded default (SQLite + the folder broker).

Every server runs under gunicorn with 2 processes x 4 gthread threads and an access log, as
`labinterp serve` does by default. The rate limit is off (a bench token would hit it at once).
The embedded figure is also set against SQLite's own floor on this disk: one writer committing
1.5 kB rows with WAL and synchronous=FULL, as labinterp's SQLite does, measured in the same run.
After each run the panels stored are counted: every 2xx must be a panel in the database.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import redis  # noqa: E402
from ingest import scratch_postgres  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from labinterp.db import upgrade_database  # noqa: E402
from labinterp.demo import SAMPLE_PANELS  # noqa: E402
from tests.integration.worker_process import (  # noqa: E402
    free_port,
    labinterp_cli,
    labinterp_process,
    wait_until,
)

THREADS = int(os.environ.get("BENCH_THREADS", 2))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", 16))
SECONDS = int(os.environ.get("BENCH_SECONDS", 10))
ADMIN_URL = os.environ.get(
    "LABINTERP_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("LABINTERP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
LUA = REPO / "bench" / "wrk" / "post_panels.lua"
GUNICORN = ["--workers", "2", "--threads", "4"]


@dataclass
class Run:
    name: str
    requests: int
    seconds: float
    non_2xx: int
    errors: str
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def wrk(port: int, body_file: Path, token: str, prefix: str, name: str) -> Run:
    """Load the server for SECONDS with wrk; its own summary, parsed."""
    out = subprocess.run(
        [
            "wrk",
            f"-t{THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{SECONDS}s",
            "--latency",
            "-s",
            str(LUA),
            f"http://127.0.0.1:{port}",
            "--",
            str(body_file),
            token,
            prefix,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    done = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    assert done, out
    seconds = float(done.group(2)) / (1000 if done.group(3) == "ms" else 1)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)

    def percentile(p: str) -> float:
        found = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        assert found, out
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
        return float(found.group(1)) * scale

    return Run(
        name=name,
        requests=int(done.group(1)),
        seconds=seconds,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=errors.group(1) if errors else "none",
        p50_ms=percentile("50"),
        p99_ms=percentile("99"),
    )


def answers(port: int, path: str = "/healthz") -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", path)
        return conn.getresponse().status < 500
    except OSError:
        return False


@contextmanager
def bare_server(tmp: Path) -> Iterator[int]:
    port = free_port()
    log = (tmp / "bare.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            *GUNICORN,
            "--worker-class",
            "gthread",
            "--access-logfile",
            "-",
            "--bind",
            f"127.0.0.1:{port}",
            "bench.bare_app:app",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: answers(port, "/"), 30, 0.1, "the bare server")
        yield port
    finally:
        process.terminate()
        process.wait(20)
        log.close()


@contextmanager
def labinterp_server(env: Mapping[str, str], tmp: Path, name: str) -> Iterator[tuple[int, str]]:
    def cli(*args: str) -> str:
        return labinterp_cli(env, *args).strip().splitlines()[-1]

    cli("clinics", "create", "bench")
    token = cli("tokens", "create", "--role", "clinic", "--clinic", "bench")
    port = free_port()
    args = ["serve", "--no-worker", "--port", str(port), *GUNICORN]
    with labinterp_process(args, env, tmp / f"{name}.log"):
        wait_until(lambda: answers(port), 60, 0.2, f"labinterp serve ({name})")
        yield port, token


def stored_panels(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM panels")).scalar_one())
    finally:
        engine.dispose()


def sqlite_floor(folder: Path, seconds: float = 3.0) -> float:
    """Commits/s of one writer inserting 1.5 kB rows, WAL, synchronous=FULL (labinterp's)."""
    conn = sqlite3.connect(folder / "floor.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    row = "x" * 1500
    n, stop = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < stop:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (body) VALUES (?)", (row,))
        conn.execute("COMMIT")
        n += 1
    rate = n / (time.perf_counter() - started)
    conn.close()
    return rate


def report(run: Run, baseline: Run, stored: int | None = None) -> None:
    ratio = run.rate / baseline.rate
    lost = "" if stored is None else f", {stored:,} panels stored"
    print(
        f"{run.name:<44} {run.rate:>8,.0f} req/s  ratio {ratio:5.3f}  p50 {run.p50_ms:6.1f} ms  "
        f"p99 {run.p99_ms:6.1f} ms  non-2xx {run.non_2xx}  socket errors {run.errors}{lost}"
    )


def main() -> None:
    panel = json.loads(json.dumps(SAMPLE_PANELS[0]))
    panel["accession"] = "@ACCESSION@"
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        body_file = tmp / "panel.json"
        body_file.write_text(json.dumps(panel))
        prefix = f"B{os.getpid()}"

        with bare_server(tmp) as port:
            baseline = wrk(port, body_file, "", prefix, "bare Flask endpoint (baseline)")

        runs: list[tuple[Run, int]] = []
        with scratch_postgres(ADMIN_URL) as database_url:
            upgrade_database(database_url)
            env = {
                "LABINTERP_INSTANCE": str(tmp / "pg"),
                "DATABASE_URL": database_url,
                "CELERY_BROKER_URL": REDIS_URL,
                "LABINTERP_RATE_LIMIT": "0",
            }
            with labinterp_server(env, tmp, "postgres") as (port, token):
                run = wrk(port, body_file, token, prefix, "POST /api/v1/panels, PostgreSQL + Redis")
            runs.append((run, stored_panels(database_url)))
        redis.Redis.from_url(REDIS_URL).flushdb()  # the tasks no worker will take

        instance = tmp / "embedded"
        env = {
            "LABINTERP_INSTANCE": str(instance),
            "DATABASE_URL": "",
            "CELERY_BROKER_URL": "",
            "LABINTERP_RATE_LIMIT": "0",
        }
        with labinterp_server(env, tmp, "embedded") as (port, token):
            run = wrk(port, body_file, token, prefix, "POST /api/v1/panels, embedded default")
        runs.append((run, stored_panels(f"sqlite:///{instance / 'labinterp.db'}")))
        floor = sqlite_floor(tmp)

    print(
        f"wrk {THREADS} threads, {CONNECTIONS} connections, {SECONDS} s per server; gunicorn "
        "2 processes x 4 threads, access log on; rate limit off"
    )
    report(baseline, baseline)
    for run, stored in runs:
        report(run, baseline, stored)
        if run.requests - run.non_2xx != stored:
            print(f"  !! {run.requests - run.non_2xx:,} answered 2xx but {stored:,} stored")
    embedded = runs[-1][0]
    print(
        f"SQLite floor (1 writer, WAL, synchronous=FULL, 1.5 kB rows): {floor:,.0f} commits/s; "
        f"embedded ingest is {embedded.rate / floor:.2f} of it"
    )


if __name__ == "__main__":
    main()
