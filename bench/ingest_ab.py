"""Ingest of several source trees of labinterp side by side: what a change bought.

The postgres row of bench/ingest_http.py (`labinterp serve --no-worker`, PostgreSQL + Redis,
wrk 2 threads x BENCH_CONNECTIONS, no pause, a new accession per request) for each tree of
BENCH_TREES, all served at once (each on its own scratch database), and the bare Flask
endpoint (bench/bare_app.py, the same gunicorn shape), driven in turn, BENCH_ROUNDS rounds of
BENCH_SECONDS each, in a rotating order: a load spike from elsewhere on the machine falls on
one run of one tree, and each tree's median ratio to the bare endpoint (measured between its
runs) is compared with the others'. Prints, per tree, req/s, the ratio, and the CPU per
request of its API processes and of its PostgreSQL backends (from /proc).

    BENCH_TREES=/tmp/base,/work/wt-perf .venv/bin/python bench/ingest_ab.py

A tree is a checkout (or `git archive` of a commit) of this repository: its `labinterp` and
`worker` packages are put first on PYTHONPATH of that tree's `labinterp` commands (the
installed command of this .venv runs them). Nothing from labinterp is imported here.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import harness as h  # bench/ is on the path: scripts run as `python bench/NAME.py`

TREES = [Path(t) for t in os.environ.get("BENCH_TREES", str(h.REPO)).split(",") if t]
ROUNDS = int(h.env_number("BENCH_ROUNDS", 5))
SECONDS = h.env_number("BENCH_SECONDS", 8)
CONNECTIONS = int(h.env_number("BENCH_CONNECTIONS", 16))


def _cpu(match: str) -> float:
    """CPU seconds so far of the live processes whose command line holds ``match``."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ")
            # an autovacuum worker of the database comes and goes: its CPU is not the POSTs'
            if match.encode() not in command or b"autovacuum" in command:
                continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return total


def main() -> None:
    h.require_wrk()
    pg, rd = h.require_postgres(), h.require_redis()
    print("ingest A/B: POST /api/v1/panels at saturation, trees side by side (bench/ingest_ab.py)")
    print(
        f"parameters: BENCH_TREES={','.join(map(str, TREES))}, BENCH_ROUNDS={ROUNDS}, "
        f"BENCH_SECONDS={SECONDS:g}, wrk 2 threads x {CONNECTIONS}; gunicorn 2 x 4 on every "
        f"side; nproc {os.cpu_count()}; PostgreSQL {pg}, Redis {rd}; load average "
        f"{os.getloadavg()[0]:.2f}"
    )
    with h.work_dir("ingest-ab") as tmp, ExitStack() as stack:
        redis_url = stack.enter_context(h.flushed_redis())
        port = h.free_port()
        bare_base = f"http://127.0.0.1:{port}"
        argv = [
            *(sys.executable, "-m", "gunicorn", "--chdir", str(h.BENCH)),
            *("--bind", f"127.0.0.1:{port}", "--worker-class", "gthread"),
            *("--workers", "2", "--threads", "4", "--access-logfile", "-", "bare_app:app"),
        ]
        bare = stack.enter_context(h.process("bare Flask app", argv, {}, tmp / "bare.log"))
        h.wait_until(
            lambda: bare.check_alive() or h.http_status(f"{bare_base}/healthz") == 200, 60, "bare"
        )
        sides: list[tuple[str, str, str, str]] = [
            ("bare", bare_base, "-", f"--bind 127.0.0.1:{port}")
        ]
        for n, tree in enumerate(TREES):
            database = stack.enter_context(h.scratch_postgres(f"ab{n}"))
            env = {
                "LABINTERP_INSTANCE": str(tmp / f"instance-{n}"),
                "DATABASE_URL": database,
                "CELERY_BROKER_URL": redis_url,
                "LABINTERP_RATE_LIMIT": "0",
                "PYTHONPATH": str(tree),
            }
            h.cli(env, "db", "upgrade")
            token = h.clinic_token(env)
            tree_port = h.free_port()
            serve = stack.enter_context(
                h.process(
                    f"serve {tree}",
                    h.labinterp_argv("serve", "--no-worker", "--port", str(tree_port)),
                    env,
                    tmp / f"serve-{n}.log",
                )
            )
            base = f"http://127.0.0.1:{tree_port}"
            h.wait_ready(base, serve)
            sides.append((str(tree), base, token, f"--port {tree_port}"))
            h.run_wrk(base, token, connections=CONNECTIONS, seconds=2, prefix=f"w{n}-")
        h.run_wrk(bare_base, "-", connections=CONNECTIONS, seconds=2, prefix="wb-")
        figures: dict[str, list[tuple[float, float, float]]] = {s[0]: [] for s in sides}
        for r in range(ROUNDS):
            order = sides[r % len(sides) :] + sides[: r % len(sides)]
            for name, base, token, marker in order:
                database_marker = (
                    f"labinterp_bench_ab{sides.index((name, base, token, marker)) - 1}_"
                )
                api0, pg0 = _cpu(marker), _cpu(database_marker)
                result = h.run_wrk(
                    base,
                    token,
                    connections=CONNECTIONS,
                    seconds=SECONDS,
                    prefix=f"r{r}{name[-6:]}-",
                )
                api1, pg1 = _cpu(marker), _cpu(database_marker)
                n = max(1, result.requests)
                figures[name].append((result.rate, 1e3 * (api1 - api0) / n, 1e3 * (pg1 - pg0) / n))
                print(
                    f"  round {r} {name}: {result.rate:,.0f} req/s, "
                    f"API {1e3 * (api1 - api0) / n:.2f} ms/req, "
                    f"PostgreSQL {1e3 * (pg1 - pg0) / n:.2f} ms/req"
                    + (f"; ! {result.problems()}" if result.problems() else "")
                    + f"; load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
                time.sleep(0.5)
        bare_rates = [f[0] for f in figures["bare"]]
        print()
        print(
            "| tree | req/s (median) | ratio to the bare endpoint (median of rounds) "
            "| API CPU ms/req | PostgreSQL CPU ms/req |"
        )
        print("| --- | --- | --- | --- | --- |")
        for name, *_ in sides:
            rows = figures[name]
            ratio = statistics.median(f[0] / b for f, b in zip(rows, bare_rates, strict=True))
            print(
                f"| {name} | {statistics.median(f[0] for f in rows):,.0f} | {ratio:.3f} | "
                + ("-" if name == "bare" else f"{statistics.median(f[1] for f in rows):.2f}")
                + " | "
                + ("-" if name == "bare" else f"{statistics.median(f[2] for f in rows):.2f}")
                + " |"
            )


if __name__ == "__main__":
    h.run_main(main)
