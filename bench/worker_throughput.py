"""Panels per second one `labinterp worker` interprets at saturation, beside Celery's no-op rate.

For each concurrency in BENCH_CONCURRENCIES (default 1 and 2, the machine's cores):

1. Fill: a scratch PostgreSQL database, Redis database 5 flushed; `labinterp serve --no-worker`
   takes BENCH_N panels from wrk (bench/wrk/post_panels.lua, BENCH_FILL_CONNECTIONS
   connections, no pause) and is then stopped, so every panel is `queued` with its task in Redis.
2. Drain: one `labinterp worker --concurrency C` starts; the `panels` table is polled until no
   panel is `queued`. The rate is (n - 1) / (last - first interpretations.created_at): the
   worker's steady rate, without its start-up, which is reported on its own (launch to first
   interpretation), with the rate from launch to the last poll.
3. Baseline, same run: BENCH_N no-op tasks (bench/noop_app.py: the same Celery settings as
   labinterp's app, which a running labinterp worker is asked for and compared with) published
   to the same Redis, then one `celery worker --concurrency C --pool prefork` of that app
   drains them; the same two rates from the moments its tasks started.

The ratio (no-op rate / labinterp rate) is how many no-op tasks' time one panel costs. Beside
the rates, the CPU time per task of the worker's process group and of the scratch database's
PostgreSQL backends (from /proc, between the first progress and the end of the drain): on a
shared 2-core machine it tells a slow worker from a starved one.
Nothing from labinterp is imported: it is driven through its CLI, HTTP and its tables.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import harness as h  # bench/ is on the path: scripts run as `python bench/NAME.py`
import noop_app

N = int(h.env_number("BENCH_N", 5000))
CONCURRENCIES = [int(c) for c in os.environ.get("BENCH_CONCURRENCIES", "1,2").split(",") if c]
FILL_CONNECTIONS = int(h.env_number("BENCH_FILL_CONNECTIONS", 8))
STALL_SECONDS = h.env_number("BENCH_STALL_SECONDS", 60)
# the Redis list labinterp's worker consumes (its log says `-Q labinterp`); only for a check
LABINTERP_QUEUE = os.environ.get("BENCH_LABINTERP_QUEUE", "labinterp")


@dataclass
class Cpu:
    """CPU the worker (its process group) and the database spent between the first poll that
    saw progress and the end of the drain, per task done meanwhile."""

    worker: float = 0.0
    database: float = 0.0
    tasks: int = 0

    def describe(self) -> str:
        if not self.tasks:
            return "CPU: not measured"
        text = f"CPU per task: worker {self.worker / self.tasks * 1000:.1f} ms"
        if self.database:
            text += f", PostgreSQL backends {self.database / self.tasks * 1000:.1f} ms"
        return text


@dataclass(frozen=True)
class Drain:
    """One worker draining a full queue: counts and moments (epoch seconds)."""

    done: int
    launched: float
    first: float
    last: float
    drained: float  # the poll that first saw the queue empty (or the stall's give-up)
    cpu: Cpu

    @property
    def steady(self) -> float:
        return (self.done - 1) / (self.last - self.first) if self.last > self.first else 0.0

    @property
    def from_launch(self) -> float:
        return self.done / (self.drained - self.launched) if self.drained > self.launched else 0.0

    def describe(self, unit: str) -> str:
        return (
            f"steady {self.steady:,.1f} {unit}/s ({self.done} between the first and the last "
            f"start, {self.last - self.first:.1f} s); from launch {self.from_launch:,.1f} "
            f"{unit}/s (first start {self.first - self.launched:.1f} s after launch); "
            f"{self.cpu.describe()}"
        )


def wait_drained(
    left: Callable[[], int], proc: h.Process, database: str = ""
) -> tuple[float, int, Cpu]:
    """Poll ``left()`` until 0; gives up after STALL_SECONDS without progress.
    (moment, left, CPU per task from the first progress on)"""
    pgid = proc.popen.pid
    name = database.rsplit("/", 1)[-1]

    def cpu() -> tuple[float, float]:
        worker = h.cpu_seconds(lambda group, cmd: group == pgid)
        # a backend's title: "postgres: USER DATABASE HOST(PORT) STATE"
        pg = h.cpu_seconds(lambda group, cmd: bool(name) and f" {name} " in cmd) if name else 0
        return worker, pg

    start_left, started = left(), None
    last_change, seen = time.monotonic(), start_left
    while seen:
        proc.check_alive()
        time.sleep(0.1)
        now_left = left()
        if now_left != seen:
            if started is None:
                started = (now_left, *cpu())
            last_change, seen = time.monotonic(), now_left
        elif time.monotonic() - last_change > STALL_SECONDS:
            print(f"  ! stalled: {seen} left and no progress for {STALL_SECONDS:g} s")
            break
    used = Cpu()
    if started is not None:
        worker, pg = cpu()
        used = Cpu(worker - started[1], pg - started[2], started[0] - seen)
    return time.time(), seen, used


def task_runtimes(log: Path) -> list[float]:
    """Run times Celery logs at INFO: `Task NAME[id] succeeded in 0.0123s`."""
    found = re.findall(r"succeeded in ([0-9.e-]+)s", log.read_text(errors="replace"))
    return [float(x) for x in found]


def compare_settings(redis_url: str) -> None:
    """Ask the running labinterp worker for its Celery settings; say where ours differ."""
    from celery import Celery

    replies = noop_app.make_app(redis_url).control.inspect(timeout=3).conf(with_defaults=False)
    # labinterp names its nodes labinterp-PID@HOST
    theirs = next(
        (conf for node, conf in (replies or {}).items() if node.startswith("labinterp")), None
    )
    if theirs is None:
        print("  ! the labinterp worker did not answer `inspect conf`: settings not compared")
        return
    defaults = Celery(set_as_current=False).conf
    ours = {
        **noop_app.MIRRORED,
        "broker_transport_options": noop_app._transport_options(redis_url, None),
    }
    differ = []
    for key, value in ours.items():
        their = theirs.get(key, defaults.get(key))
        if isinstance(value, tuple):
            value = list(value)
        if their != value:
            differ.append(f"{key}: labinterp {their!r}, no-op app {value!r}")
    if differ:
        print(
            "  ! the no-op app's settings differ from the labinterp worker's: " + "; ".join(differ)
        )
    else:
        print(f"  the no-op app's Celery settings match the labinterp worker's ({len(ours)} keys)")


def labinterp_row(c: int, tmp: Path) -> tuple[Drain, dict[str, int]]:
    with h.flushed_redis() as redis_url, h.scratch_postgres(f"wt{c}") as database:
        env = {
            "LABINTERP_INSTANCE": str(tmp / f"instance-{c}"),
            "DATABASE_URL": database,
            "CELERY_BROKER_URL": redis_url,
            "LABINTERP_RATE_LIMIT": "0",
        }
        h.cli(env, "db", "upgrade")
        token = h.clinic_token(env)

        def stored() -> int:
            return sum(h.status_counts(database).values())

        port = h.free_port()
        base = f"http://127.0.0.1:{port}"
        serve_log = tmp / f"serve-c{c}.log"
        argv = h.labinterp_argv("serve", "--no-worker", "--port", str(port))
        started = time.monotonic()
        with h.process("labinterp serve --no-worker", argv, env, serve_log) as serve:
            h.wait_ready(base, serve)
            fill = h.run_wrk(
                base,
                token,
                connections=FILL_CONNECTIONS,
                seconds=3600,
                prefix=f"T{c}-",
                budget=N,
                until=lambda: stored() >= N,
                log=tmp / "wrk.log",
            )
        # serve has stopped: its publisher thread sent what it held before exiting
        counts = h.status_counts(database)
        waiting = _redis_llen(redis_url, LABINTERP_QUEUE)
        print(
            f"  filled in {time.monotonic() - started:.0f} s: {sum(counts.values())} panels "
            f"stored {counts}; wrk {fill.rate:,.0f} req/s, statuses {fill.statuses}; "
            f"{waiting} tasks waiting in Redis"
        )
        if fill.problems():
            print(f"  ! fill: {fill.problems()}")
        if waiting == 0 and counts.get("queued", 0):
            print(
                "  the API hands nothing to the broker: the worker's relay publishes the "
                f"{counts['queued']} queued panels when it starts (counted in its rate)"
            )

        worker_log = tmp / f"worker-c{c}.log"
        load_before = os.getloadavg()[0]
        launched = time.time()
        argv = h.labinterp_argv("worker", "--concurrency", str(c))
        with h.process("labinterp worker", argv, env, worker_log) as worker:
            drained, _, cpu = wait_drained(
                lambda: h.status_counts(database).get("queued", 0), worker, database
            )
            compare_settings(redis_url)
        print(f"  load average {load_before:.2f} before the drain, {os.getloadavg()[0]:.2f} after")
        done, first, last = h.interpretation_span(database)
        final = h.status_counts(database)
        h.report_logs(serve_log, worker_log)
        runtimes = task_runtimes(worker_log)
        if runtimes:
            print(
                f"  labinterp task run time (Celery's log): {h.fmt_ms(h.distribution_ms(runtimes))}"
            )
    if first is None or last is None:
        raise h.BenchError(f"no panel was interpreted; see {worker_log}")
    return Drain(done, launched, first, last, drained, cpu), final


def _redis_llen(url: str, key: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.llen(key))
    finally:
        client.close()


def noop_row(c: int, tmp: Path) -> Drain:
    stamps = tmp / f"noop-stamps-c{c}"
    stamps.mkdir()
    with h.flushed_redis() as redis_url:
        client = noop_app.make_app(redis_url)
        with client.producer_or_acquire() as producer:
            for _ in range(N):
                client.send_task(noop_app.TASK, args=[0.0], producer=producer)
        env = {
            "BENCH_NOOP_BROKER": redis_url,
            "BENCH_NOOP_STAMPS": str(stamps),
            "PYTHONPATH": str(h.BENCH),
        }
        argv = [
            *(sys.executable, "-m", "celery", "-A", "noop_app", "worker"),
            *("-Q", noop_app.QUEUE, "--concurrency", str(c), "--pool", "prefork"),
            *("--loglevel", "INFO", f"--hostname=bench-noop-{os.getpid()}@%h"),
        ]
        launched = time.time()
        log = tmp / f"noop-worker-c{c}.log"
        with h.process("no-op celery worker", argv, env, log) as worker:

            def left() -> int:
                return N - sum(p.read_bytes().count(b"\n") for p in stamps.glob("stamps-*"))

            drained, _, cpu = wait_drained(left, worker)
        started = [s for _, s in noop_app.read_stamps(stamps)]
    if not started:
        raise h.BenchError(f"no no-op task ran; see {log}")
    return Drain(len(started), launched, min(started), max(started), drained, cpu)


def main() -> None:
    h.require_wrk()
    pg = h.require_postgres()
    rd = h.require_redis()
    print("worker throughput: one worker process at saturation (bench/worker_throughput.py)")
    print(
        f"parameters: BENCH_N={N} panels, BENCH_CONCURRENCIES={','.join(map(str, CONCURRENCIES))} "
        f"(nproc {os.cpu_count()}), BENCH_FILL_CONNECTIONS={FILL_CONNECTIONS}, "
        f"BENCH_STALL_SECONDS={STALL_SECONDS:g}; PostgreSQL {pg}, Redis {rd} ({h.REDIS_URL})"
    )
    rows = []
    with h.work_dir("worker-throughput") as tmp:
        for c in CONCURRENCIES:
            print(f"concurrency {c}")
            panels, final = labinterp_row(c, tmp)
            print(f"  labinterp worker --concurrency {c}: {final}")
            print(f"    {panels.describe('panels')}")
            if final.get("queued") or final.get("failed"):
                print(f"  ! not every panel ended interpreted: {final}")
            noop = noop_row(c, tmp)
            print(f"  no-op Celery worker --concurrency {c} --pool prefork: {noop.done} tasks")
            print(f"    {noop.describe('tasks')}")
            ratio = noop.steady / panels.steady if panels.steady else float("nan")
            print(f"  ratio: one panel costs {ratio:.1f}x a no-op task's time (steady rates)")
            rows.append((c, panels, noop, ratio))
    print()
    print(
        "| worker | labinterp panels/s (steady) | from launch | CPU ms/panel (worker + PG) "
        "| no-op tasks/s (steady) | CPU ms/no-op | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for c, panels, noop, ratio in rows:
        p, n = panels.cpu, noop.cpu
        print(
            f"| --concurrency {c} | {panels.steady:,.0f} | {panels.from_launch:,.0f} | "
            f"{p.worker / max(p.tasks, 1) * 1000:.1f} + {p.database / max(p.tasks, 1) * 1000:.1f} "
            f"| {noop.steady:,.0f} | {n.worker / max(n.tasks, 1) * 1000:.1f} | {ratio:.1f}x |"
        )


if __name__ == "__main__":
    h.run_main(main)
