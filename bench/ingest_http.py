"""Durable ingest over real HTTP, driven by wrk: POST /api/v1/panels at saturation.

Three servers run side by side for the whole run, each driven in turn by wrk with
bench/wrk/post_panels.lua (BENCH_CONNECTIONS keep-alive connections on 2 threads, no pause, a
new accession and patient per request) for BENCH_SECONDS, after a 2 s warm-up of each:

  baseline  bench/bare_app.py under gunicorn, 2 processes x 4 gthread threads (the shape of
            `labinterp serve`): a Flask endpoint that only parses the same JSON body
  postgres  `labinterp serve --no-worker` on a scratch PostgreSQL database and Redis database 5
  embedded  `labinterp serve --no-worker` on the embedded default (SQLite, kombu's folder broker)
floor     SQLite's own durable-commit rate on the same disk (one writer, WAL, synchronous=FULL)

They are driven in BENCH_ROUNDS rounds, in a rotating order (bare, postgres, embedded; then
postgres, embedded, bare; ...): each ratio is a server's rate over the bare endpoint's rate in
the same round, and the table gives the medians of the rounds. A virtual machine whose speed
moves within minutes then moves both sides of a ratio alike (a run of the bare endpoint and a
run of labinterp a minute apart once met host speeds 25 % apart).

No worker runs, so only the durable ingest is timed (auth, parse, acceptance, one durable
write). The panels each measured run stored are counted in its `panels` table and set beside
wrk's 2xx count. Nothing from labinterp is imported.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import harness as h  # bench/ is on the path: scripts run as `python bench/NAME.py`

CONNECTIONS = int(h.env_number("BENCH_CONNECTIONS", 16))
SECONDS = h.env_number("BENCH_SECONDS", 10)
ROUNDS = int(h.env_number("BENCH_ROUNDS", 3))
WARMUP = 2.0
SETTLE = 2.0  # after a measured run: the requests still in flight when wrk stopped


@dataclass
class Server:
    name: str
    base: str
    token: str
    stored: Callable[[], int] | None  # panels in its table (None: the bare endpoint)
    runs: list[h.WrkResult] = field(default_factory=list)
    shortfalls: list[str] = field(default_factory=list)

    def drive(self, log: Path, prefix: str) -> h.WrkResult:
        before = None if self.stored is None else self.stored()
        result = h.run_wrk(
            self.base, self.token, connections=CONNECTIONS, seconds=SECONDS, prefix=prefix, log=log
        )
        if self.stored is not None and before is not None:
            time.sleep(SETTLE)
            stored = self.stored() - before
            if stored < result.ok:
                self.shortfalls.append(f"wrk 2xx {result.ok} but only {stored} panels stored")
        if result.problems():
            self.shortfalls.append(result.problems())
        self.runs.append(result)
        return result


def start_bare(stack: ExitStack, tmp: Path) -> Server:
    port = h.free_port()
    argv = [
        *(sys.executable, "-m", "gunicorn", "--chdir", str(h.BENCH), "--bind", f"127.0.0.1:{port}"),
        *("--worker-class", "gthread", "--workers", "2", "--threads", "4"),
        *("--access-logfile", "-", "bare_app:app"),
    ]
    base = f"http://127.0.0.1:{port}"
    proc = stack.enter_context(h.process("bare Flask app", argv, {}, tmp / "bare.log"))
    h.wait_until(
        lambda: proc.check_alive() or h.http_status(f"{base}/healthz") == 200, 60, "bare app"
    )
    return Server("bare", base, "not-checked", None)


def start_labinterp(
    stack: ExitStack, tmp: Path, name: str, env: dict[str, str], database: str | Path
) -> Server:
    token = h.clinic_token(env)
    port = h.free_port()
    base = f"http://127.0.0.1:{port}"
    argv = h.labinterp_argv("serve", "--no-worker", "--port", str(port))
    serve = stack.enter_context(
        h.process(f"labinterp serve --no-worker ({name})", argv, env, tmp / f"{name}-serve.log")
    )
    h.wait_ready(base, serve)
    return Server(name, base, token, lambda: sum(h.status_counts(database).values()))


def median_of(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def main() -> None:
    h.require_wrk()
    pg, rd = h.require_postgres(), h.require_redis()
    print("ingest over HTTP: POST /api/v1/panels at saturation (bench/ingest_http.py)")
    print(
        f"parameters: wrk 2 threads, BENCH_CONNECTIONS={CONNECTIONS}, BENCH_SECONDS={SECONDS:g} "
        f"(after a {WARMUP:g} s warm-up), no pause, BENCH_ROUNDS={ROUNDS} in rotating order; "
        f"gunicorn 2 processes x 4 threads; no worker; nproc {os.cpu_count()}; PostgreSQL {pg}, "
        f"Redis {rd} ({h.REDIS_URL}); rate limit off; load average {os.getloadavg()[0]:.2f}"
    )
    with h.work_dir("ingest-http") as tmp, ExitStack() as stack:
        log = tmp / "wrk.log"
        redis_url = stack.enter_context(h.flushed_redis())
        database = stack.enter_context(h.scratch_postgres("ingest"))
        env = {
            "LABINTERP_INSTANCE": str(tmp / "instance-postgres"),
            "DATABASE_URL": database,
            "CELERY_BROKER_URL": redis_url,
            "LABINTERP_RATE_LIMIT": "0",
        }
        h.cli(env, "db", "upgrade")
        instance = tmp / "instance-embedded"
        embedded_env = {
            "LABINTERP_INSTANCE": str(instance),
            "DATABASE_URL": "",
            "CELERY_BROKER_URL": "",
            "LABINTERP_RATE_LIMIT": "0",
        }
        servers = [
            start_bare(stack, tmp),
            start_labinterp(stack, tmp, "postgres", env, database),
            start_labinterp(stack, tmp, "embedded", embedded_env, h.sqlite_file(instance)),
        ]
        for server in servers:
            h.run_wrk(
                server.base,
                server.token,
                connections=CONNECTIONS,
                seconds=WARMUP,
                prefix=f"{server.name}-warm-",
                log=log,
            )
        time.sleep(SETTLE)
        for r in range(ROUNDS):
            shift = r % len(servers)
            for server in servers[shift:] + servers[:shift]:
                result = server.drive(log, f"{server.name}-r{r}-")
                print(
                    f"  round {r} {server.name}: {result.rate:,.0f} req/s, "
                    f"p50 {result.latency_ms['p50']:.1f} ms, p99 {result.latency_ms['p99']:.1f} "
                    f"ms; load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
        floor = sqlite_floor(tmp)
        bare, postgres, embedded = servers
        for server in (postgres, embedded):
            print(
                f"  {server.name}: "
                + ("; ".join(server.shortfalls) if server.shortfalls else "every 2xx stored")
            )
        h.report_logs(tmp / "postgres-serve.log", tmp / "embedded-serve.log")

    def ratios(server: Server) -> list[float]:
        return [run.rate / base.rate for run, base in zip(server.runs, bare.runs, strict=True)]

    print(
        f"SQLite's own floor on this disk (one writer, WAL, synchronous=FULL, 1.5 kB rows, one "
        f"commit each): {floor:,.0f} commits/s"
    )
    for server in (postgres, embedded):
        print(
            f"{server.name}: ratio to the bare endpoint by round "
            + ", ".join(f"{x:.3f}" for x in ratios(server))
        )
    print()
    print("| server | req/s | p50 | p99 | ratio to the bare endpoint | ratio to SQLite's floor |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, server in (
        ("bare Flask endpoint (baseline)", bare),
        ("labinterp, PostgreSQL + Redis", postgres),
        ("labinterp, embedded default", embedded),
    ):
        rate = median_of([run.rate for run in server.runs])
        ratio = 1.0 if server is bare else median_of(ratios(server))
        print(
            f"| {name} | {rate:,.0f} | "
            f"{median_of([run.latency_ms['p50'] for run in server.runs]):.1f} ms | "
            f"{median_of([run.latency_ms['p99'] for run in server.runs]):.1f} ms | {ratio:.3f} | "
            + (f"{rate / floor:.3f}" if server is embedded else "-")
            + " |"
        )
    print("(medians of the rounds; each ratio taken against the bare endpoint of its round)")


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
