"""Durable ingest over real HTTP, driven by wrk: POST /api/v1/panels at saturation.

Rows, each driven by wrk with bench/wrk/post_panels.lua (BENCH_CONNECTIONS keep-alive
connections on 2 threads, no pause, a new accession and patient per request) for BENCH_SECONDS
after a 2 s warm-up:

  baseline  bench/bare_app.py under gunicorn, 2 processes x 4 gthread threads (the shape of
            `labinterp serve`): a Flask endpoint that only parses the same JSON body
  postgres  `labinterp serve --no-worker` on a scratch PostgreSQL database and Redis database 5
  embedded  `labinterp serve --no-worker` on the embedded default (SQLite, kombu's folder broker)
floor     SQLite's own durable-commit rate on the same disk (one writer, WAL, synchronous=FULL)

No worker runs, so only the durable ingest is timed (auth, parse, acceptance, one transaction,
the hand-off to the publisher). The panels a row stored are counted in its `panels` table and
set beside wrk's 2xx count. Nothing from labinterp is imported.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import harness as h  # bench/ is on the path: scripts run as `python bench/NAME.py`

CONNECTIONS = int(h.env_number("BENCH_CONNECTIONS", 16))
SECONDS = h.env_number("BENCH_SECONDS", 10)
WARMUP = 2.0


def drive(base: str, token: str, name: str, log: Path, then: Callable[[], object]) -> h.WrkResult:
    """A warm-up, ``then()``, the measured run."""
    h.run_wrk(base, token, connections=CONNECTIONS, seconds=WARMUP, prefix=f"{name}-warm-", log=log)
    then()
    return h.run_wrk(
        base, token, connections=CONNECTIONS, seconds=SECONDS, prefix=f"{name}-", log=log
    )


def bare(tmp: Path) -> h.WrkResult:
    port = h.free_port()
    argv = [
        *(sys.executable, "-m", "gunicorn", "--chdir", str(h.BENCH), "--bind", f"127.0.0.1:{port}"),
        *("--worker-class", "gthread", "--workers", "2", "--threads", "4"),
        *("--access-logfile", "-", "bare_app:app"),
    ]
    base = f"http://127.0.0.1:{port}"
    with h.process("bare Flask app", argv, {}, tmp / "bare.log") as proc:
        h.wait_until(
            lambda: proc.check_alive() or h.http_status(f"{base}/healthz") == 200, 60, "bare app"
        )
        return drive(base, "not-checked", "bare", tmp / "wrk.log", lambda: None)


def labinterp(tmp: Path, name: str, env: dict[str, str], database: str | Path) -> h.WrkResult:
    token = h.clinic_token(env)
    port = h.free_port()
    base = f"http://127.0.0.1:{port}"
    argv = h.labinterp_argv("serve", "--no-worker", "--port", str(port))
    log = tmp / f"{name}-serve.log"
    with h.process("labinterp serve --no-worker", argv, env, log) as serve:
        h.wait_ready(base, serve)
        counted: list[int] = []

        def count() -> None:
            time.sleep(2)  # the warm-up's requests still in flight when wrk stopped
            counted.append(sum(h.status_counts(database).values()))

        result = drive(base, token, name, tmp / "wrk.log", count)
    stored = sum(h.status_counts(database).values()) - counted[0]
    print(
        f"  {name}: wrk 2xx {result.ok}, panels stored {stored} (more: requests in flight when "
        "wrk stopped)"
        if stored >= result.ok
        else f"  ! {name}: wrk 2xx {result.ok} but only {stored} panels stored"
    )
    if result.problems():
        print(f"  ! {name}: {result.problems()}")
    h.report_logs(log)
    return result


def line(name: str, result: h.WrkResult, base: h.WrkResult | None) -> str:
    lat = result.latency_ms
    text = (
        f"{name}: {result.rate:,.0f} req/s, p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms "
        f"({result.requests} requests in {result.seconds:.1f} s)"
    )
    if base is not None and result.rate:
        text += f"; {base.rate / result.rate:.1f}x the baseline's time per request"
    return text


def main() -> None:
    h.require_wrk()
    pg, rd = h.require_postgres(), h.require_redis()
    print("ingest over HTTP: POST /api/v1/panels at saturation (bench/ingest_http.py)")
    print(
        f"parameters: wrk 2 threads, BENCH_CONNECTIONS={CONNECTIONS}, BENCH_SECONDS={SECONDS:g} "
        f"(after a {WARMUP:g} s warm-up), no pause; gunicorn 2 processes x 4 threads; no worker; "
        f"nproc {os.cpu_count()}; PostgreSQL {pg}, Redis {rd} ({h.REDIS_URL}); rate limit off"
    )
    with h.work_dir("ingest-http") as tmp:
        baseline = bare(tmp)
        with h.flushed_redis() as redis_url, h.scratch_postgres("ingest") as database:
            env = {
                "LABINTERP_INSTANCE": str(tmp / "instance-postgres"),
                "DATABASE_URL": database,
                "CELERY_BROKER_URL": redis_url,
                "LABINTERP_RATE_LIMIT": "0",
            }
            h.cli(env, "db", "upgrade")
            postgres = labinterp(tmp, "postgres", env, database)
        instance = tmp / "instance-embedded"
        env = {
            "LABINTERP_INSTANCE": str(instance),
            "DATABASE_URL": "",
            "CELERY_BROKER_URL": "",
            "LABINTERP_RATE_LIMIT": "0",
        }
        embedded = labinterp(tmp, "embedded", env, h.sqlite_file(instance))
        floor = sqlite_floor(tmp)
    print(line("baseline bare Flask JSON endpoint", baseline, None))
    print(line("POST /api/v1/panels, PostgreSQL + Redis", postgres, baseline))
    print(
        line("POST /api/v1/panels, embedded default (SQLite + folder broker)", embedded, baseline)
    )
    print(
        f"SQLite's own floor on this disk (one writer, WAL, synchronous=FULL, 1.5 kB rows, one "
        f"commit each): {floor:,.0f} commits/s"
    )
    print()
    print("| server | req/s | p50 | p99 | ratio to the bare endpoint | ratio to SQLite's floor |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, result, of_floor in (
        ("bare Flask endpoint (baseline)", baseline, None),
        ("labinterp, PostgreSQL + Redis", postgres, None),
        ("labinterp, embedded default", embedded, embedded.rate / floor),
    ):
        print(
            f"| {name} | {result.rate:,.0f} | {result.latency_ms['p50']:.1f} ms | "
            f"{result.latency_ms['p99']:.1f} ms | {result.rate / baseline.rate:.3f} | "
            + ("-" if of_floor is None else f"{of_floor:.3f}")
            + " |"
        )


def sqlite_floor(folder: Path, seconds: float = 3.0) -> float:
    """Commits/s of one writer inserting 1.5 kB rows with WAL and synchronous=FULL (labinterp's
    SQLite settings), on the same disk, in the same run: what no embedded ingest can beat."""
    conn = sqlite3.connect(folder / "floor.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        row, commits = "x" * 1500, 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t (body) VALUES (?)", (row,))
            conn.execute("COMMIT")
            commits += 1
        return commits / (time.perf_counter() - started)
    finally:
        conn.close()


if __name__ == "__main__":
    h.run_main(main)
