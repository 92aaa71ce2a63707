"""Time from a panel's 202 to its interpretation being stored, at a steady load.

Rows (BENCH_ROWS, default all four):

  postgres      PostgreSQL + Redis: `labinterp serve --no-worker` and one `labinterp worker`
                (default concurrency) at BENCH_RATE panels/s (issue 5: 200/s for 60 s,
                p50 <= 25 ms, p99 <= 100 ms)
  postgres-low  the same at BENCH_POSTGRES_LOW_RATE panels/s (20): beside the embedded row,
                and a figure below saturation when 200/s is more than the machine takes
  embedded      `labinterp serve` alone (SQLite, kombu's folder broker, its own worker) at
                BENCH_EMBEDDED_RATE panels/s (20)
  embedded-max  the same at BENCH_EMBEDDED_MAX_RATE panels/s (40): the highest steady rate it
                was found to sustain on the 2-core machine, quiet (30 and 40 sustained, 50 did
                not; see bench/RESULTS.md). The row says whether this run sustained it.

Load: wrk with bench/wrk/post_panels.lua. C connections each pausing a mean of D ms (drawn
from [0.5, 1.5] x D so they do not fire in step) send about C / (D + r) requests per second,
r being the response time (and wrk's overhead). A warm-up of BENCH_WARMUP seconds at the
target runs in two halves: the first warms the processes, the second gives r = C / rate - D
from the rate it achieved (capped at BENCH_MAX_RESPONSE_MS: a server that does not keep up is
offered the target rate as if it answered that fast, not more connections). Then C (even) and
D >= BENCH_MIN_DELAY_MS are set so that C / (D + r) is the target; the achieved rate is wrk's.

Measure: for every panel the measured run stored, interpretations.created_at minus
panels.created_at, read from the database after the backlog drained (both stamped by labinterp
on this machine's clock). Every 2xx must end interpreted: panels left queued or failed are
printed as a shortfall.

Baseline, same run and same load: the round trip of a no-op Celery task (bench/noop_app.py,
labinterp's Celery settings) through the same broker to a worker of the row's shape, published
at BENCH_BASELINE_RATE tasks/s by this script during the measured run: publish moment to the
moment the task starts, so the ratio shows what labinterp adds to the queue's own round trip.
Why not GET /healthz: the figure is what happens after the 202 (publish, broker, a worker
taking the task, interpreting, storing) and contains no HTTP round trip; the no-op task is the
floor of that very path (on the embedded default, the folder broker's 0.1 s polling alone).
wrk's POST response times are printed beside it for the HTTP side.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness as h  # bench/ is on the path: scripts run as `python bench/NAME.py`
import noop_app

RATE = h.env_number("BENCH_RATE", 200)
SECONDS = h.env_number("BENCH_SECONDS", 60)
POSTGRES_LOW_RATE = h.env_number("BENCH_POSTGRES_LOW_RATE", 20)
EMBEDDED_RATE = h.env_number("BENCH_EMBEDDED_RATE", 20)
EMBEDDED_MAX_RATE = h.env_number("BENCH_EMBEDDED_MAX_RATE", 40)
WARMUP = h.env_number("BENCH_WARMUP", 10)
MIN_DELAY_MS = h.env_number("BENCH_MIN_DELAY_MS", 100)
MAX_RESPONSE_MS = h.env_number("BENCH_MAX_RESPONSE_MS", 100)
BASELINE_RATE = h.env_number("BENCH_BASELINE_RATE", 10)
# longer than labinterp's sweeper takes to publish a lost task again (60 s + a 30 s beat), so a
# panel it rescues counts with its real latency rather than as lost
STALL_SECONDS = h.env_number("BENCH_STALL_SECONDS", 120)
ALL_ROWS = "postgres,postgres-low,embedded,embedded-max"
ROWS = [r.strip() for r in os.environ.get("BENCH_ROWS", ALL_ROWS).split(",") if r.strip()]
SLOW_SECONDS = 10.0  # a panel this late was not merely queued behind others
GOAL = {"p50": 25.0, "p99": 100.0}  # ms, issue 5, for the postgres row at 200 panels/s


@dataclass
class System:
    """A running labinterp and a no-op Celery worker beside it on the same broker."""

    name: str
    base: str
    token: str
    database: str | Path
    noop: Any  # the Celery app the baseline publishes with
    stamps: Path
    procs: list[h.Process]
    noop_worker: h.Supervised
    logs: list[Path]
    task_log: Path  # where labinterp's worker logs its tasks
    shape: str  # what ran, for the output
    noop_shape: str

    def check_alive(self) -> None:
        for proc in self.procs:
            proc.check_alive()


@dataclass
class Row:
    name: str
    target: float
    connections: int = 0
    delay_ms: float = 0.0
    wrk: h.WrkResult | None = None
    latency: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    posted: int = 0
    stored: int = 0
    interpreted: int = 0
    left: dict[str, int] = field(default_factory=dict)
    drained_after: float = math.nan  # seconds from the end of the load to the last stamp
    thirds: tuple[float, float] = (math.nan, math.nan)  # p50 of the first and last third
    slow: int = 0  # panels over SLOW_SECONDS
    baseline_lost: int = 0
    noop_restarts: int = 0
    loadavg: tuple[float, float] = (math.nan, math.nan)  # 1-minute, before and after the run


def noop_worker_argv(pool: str) -> list[str]:
    return [
        *(sys.executable, "-m", "celery", "-A", "noop_app", "worker", "-Q", noop_app.QUEUE),
        *("--concurrency", "1", "--pool", pool, "--loglevel", "INFO"),
        f"--hostname=bench-noop-{os.getpid()}@%h",
    ]


@contextmanager
def postgres_system(tmp: Path, tag: str) -> Iterator[System]:
    with ExitStack() as stack:
        redis_url = stack.enter_context(h.flushed_redis())
        database = stack.enter_context(h.scratch_postgres(tag.replace("-", "_")))
        env = {
            "LABINTERP_INSTANCE": str(tmp / f"instance-{tag}"),
            "DATABASE_URL": database,
            "CELERY_BROKER_URL": redis_url,
            "LABINTERP_RATE_LIMIT": "0",
        }
        h.cli(env, "db", "upgrade")
        token = h.clinic_token(env)
        port = h.free_port()
        stamps = tmp / f"stamps-{tag}"
        stamps.mkdir()
        logs = [tmp / f"{tag}-serve.log", tmp / f"{tag}-worker.log", tmp / f"{tag}-noop.log"]
        serve = stack.enter_context(
            h.process(
                "labinterp serve --no-worker",
                h.labinterp_argv("serve", "--no-worker", "--port", str(port)),
                env,
                logs[0],
            )
        )
        worker = stack.enter_context(
            h.process("labinterp worker", h.labinterp_argv("worker"), env, logs[1])
        )
        noop_env = {
            "BENCH_NOOP_BROKER": redis_url,
            "BENCH_NOOP_STAMPS": str(stamps),
            "PYTHONPATH": str(h.BENCH),
        }
        noop = stack.enter_context(
            h.supervised("no-op celery worker", noop_worker_argv("prefork"), noop_env, logs[2])
        )
        base = f"http://127.0.0.1:{port}"
        h.wait_ready(base, serve)
        yield System(
            name=tag,
            base=base,
            token=token,
            database=database,
            noop=noop_app.make_app(redis_url),
            stamps=stamps,
            procs=[serve, worker],
            noop_worker=noop,
            logs=logs,
            task_log=logs[1],
            shape="PostgreSQL + Redis: labinterp serve --no-worker (2 processes x 4 threads) "
            "+ one labinterp worker (default concurrency: two processes per core, prefork)",
            noop_shape="no-op worker: prefork, concurrency 1, Redis",
        )


@contextmanager
def embedded_system(tmp: Path, tag: str) -> Iterator[System]:
    instance = tmp / f"instance-{tag}"
    env = {
        "LABINTERP_INSTANCE": str(instance),
        "DATABASE_URL": "",
        "CELERY_BROKER_URL": "",
        "LABINTERP_RATE_LIMIT": "0",
    }
    token = h.clinic_token(env)  # the embedded default sets its SQLite schema up itself
    port = h.free_port()
    stamps = tmp / f"stamps-{tag}"
    stamps.mkdir()
    folder = tmp / f"noop-broker-{tag}"
    logs = [tmp / f"{tag}-serve.log", tmp / f"{tag}-noop.log"]
    with ExitStack() as stack:
        serve = stack.enter_context(
            h.process(
                "labinterp serve", h.labinterp_argv("serve", "--port", str(port)), env, logs[0]
            )
        )
        noop_env = {
            "BENCH_NOOP_BROKER": "filesystem://localhost/",
            "BENCH_NOOP_FOLDER": str(folder),
            "BENCH_NOOP_STAMPS": str(stamps),
            "PYTHONPATH": str(h.BENCH),
        }
        # supervised: kombu's folder broker can kill it as it kills the embedded worker
        noop = stack.enter_context(
            h.supervised("no-op celery worker", noop_worker_argv("solo"), noop_env, logs[1])
        )
        base = f"http://127.0.0.1:{port}"
        h.wait_ready(base, serve)
        yield System(
            name=tag,
            base=base,
            token=token,
            database=h.sqlite_file(instance),
            noop=noop_app.make_app("filesystem://localhost/", folder=folder),
            stamps=stamps,
            procs=[serve],
            noop_worker=noop,
            logs=logs,
            task_log=logs[0],
            shape="embedded default: labinterp serve (SQLite, kombu folder broker, "
            "2 processes x 4 threads, its own solo worker with the sweeper)",
            noop_shape="no-op worker: solo, kombu folder broker polled every 0.1 s "
            "(its own folder), as the embedded worker",
        )


class BaselinePublisher:
    """Publishes no-op tasks stamped with their send time, at a steady rate, from a thread."""

    def __init__(self, app: Any, rate: float) -> None:
        self._app = app
        self._interval = 1 / rate if rate > 0 else 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="baseline", daemon=True)
        self.sent = 0
        self.error: BaseException | None = None

    def __enter__(self) -> BaselinePublisher:
        if self._interval:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        try:
            with self._app.producer_or_acquire() as producer:
                due = time.monotonic()
                while not self._stop.is_set():
                    self._app.send_task(noop_app.TASK, args=[time.time()], producer=producer)
                    self.sent += 1
                    due += self._interval
                    self._stop.wait(max(0.0, due - time.monotonic()))
        except BaseException as exc:  # reported by the row, not lost in a thread
            self.error = exc


def shape_load(rate: float, response_ms: float) -> tuple[int, float]:
    """Connections and mean pause so that C / (D + r) = rate with D >= MIN_DELAY_MS; C even,
    so that wrk's two threads take half each (wrk gives each thread C // threads)."""
    connections = max(2, math.ceil(rate * (MIN_DELAY_MS + response_ms) / 1000))
    connections += connections % 2
    return connections, connections * 1000 / rate - response_ms


def wait_interpreted(system: System, what: str) -> dict[str, int]:
    """Until no panel is `queued`; gives up after STALL_SECONDS without progress."""
    last_change, seen = time.monotonic(), None
    while True:
        system.check_alive()
        counts = h.status_counts(system.database)
        queued = counts.get("queued", 0)
        if not queued:
            return counts
        if queued != seen:
            last_change, seen = time.monotonic(), queued
        elif time.monotonic() - last_change > STALL_SECONDS:
            print(f"  ! {what}: {queued} panels still queued, no progress for {STALL_SECONDS:g} s")
            return counts
        time.sleep(0.2)


def measure(system: System, row: Row, tmp: Path) -> Row:
    wrk_log = tmp / "wrk.log"
    # the no-op worker answers before anything is timed
    system.noop.send_task(noop_app.TASK, args=[0.0])
    h.wait_until(
        lambda: noop_app.read_stamps(system.stamps) or system.check_alive(),
        60,
        "the no-op worker to run its first task",
    )
    # warm-up at the target rate, in two halves: the first warms the processes up (their first
    # requests are slow), the second measures the response time the load shape needs
    c0, d0 = shape_load(row.target, 10.0)
    for half in ("warm", "calibrate"):
        warm = h.run_wrk(
            system.base,
            system.token,
            connections=c0,
            seconds=max(1.0, WARMUP / 2),
            prefix=f"{system.name}-{half}-",
            delay_ms=d0,
            log=wrk_log,
        )
    # what one request costs a connection besides its pause, from the rate the calibration
    # achieved: the response time and wrk's own overhead, averaged as the run will average them
    # (wrk counts no request still in flight when it stops: half a cycle per connection)
    cycles = warm.rate + c0 / (2 * warm.seconds) if warm.seconds else 0.0
    response_ms = 1000 * c0 / cycles - d0 if warm.rate else math.inf
    row.connections, row.delay_ms = shape_load(
        row.target, max(0.0, min(response_ms, MAX_RESPONSE_MS))
    )
    print(
        f"  warm-up {WARMUP:g} s: {c0} connections x {d0:.0f} ms gave {warm.rate:.1f} req/s in "
        f"its second half (median response {warm.latency_ms['p50']:.1f} ms): {response_ms:.1f} ms "
        f"per request besides the pause -> {row.connections} connections, mean pause "
        f"{row.delay_ms:.1f} ms"
    )
    if response_ms > MAX_RESPONSE_MS:
        # a saturated server answers slowly: sizing on that would only open more connections
        # to wait in its queue, so the load is the target rate *if* it answered in this time
        print(
            f"  ! {response_ms:.0f} ms per request at {row.target:g}/s: the server is saturated "
            f"(or the machine busy); the load is sized for {MAX_RESPONSE_MS:g} ms "
            "(BENCH_MAX_RESPONSE_MS) and the achieved rate below is what it took"
        )
    time.sleep(2)  # the warm-up's requests still in flight when wrk stopped
    wait_interpreted(system, "warm-up")
    before = set(h.panel_rows(system.database))

    started, restarts, load_before = time.time(), system.noop_worker.restarts, os.getloadavg()[0]
    with BaselinePublisher(system.noop, BASELINE_RATE) as publisher:
        row.wrk = h.run_wrk(
            system.base,
            system.token,
            connections=row.connections,
            seconds=SECONDS,
            prefix=f"{system.name}-run-",
            delay_ms=row.delay_ms,
            log=wrk_log,
        )
    ended = time.time()
    row.loadavg = (load_before, os.getloadavg()[0])
    if publisher.error is not None:
        raise h.BenchError(f"publishing the baseline's no-op tasks failed: {publisher.error!r}")
    wait_interpreted(system, "the measured run")

    def baseline() -> list[float]:
        pairs = noop_app.read_stamps(system.stamps)
        return [run - sent for sent, run in pairs if started <= sent <= ended]

    with contextlib.suppress(h.BenchError):  # a lost no-op task is reported, not fatal
        h.wait_until(lambda: len(baseline()) >= publisher.sent, 30, "the baseline's tasks")
    row.baseline = h.distribution_ms(baseline())
    row.baseline_lost = publisher.sent - len(baseline())
    row.noop_restarts = system.noop_worker.restarts - restarts

    rows = [r for pid, r in h.panel_rows(system.database).items() if pid not in before]
    row.posted, row.stored = row.wrk.ok, len(rows)
    timed = sorted(
        (r.created, r.interpreted - r.created) for r in rows if r.interpreted is not None
    )
    row.interpreted = len(timed)
    row.left = {}
    for r in rows:
        if r.interpreted is None or r.status != "interpreted":
            row.left[r.status] = row.left.get(r.status, 0) + 1
    row.latency = h.distribution_ms([lat for _, lat in timed])
    row.slow = sum(1 for _, lat in timed if lat > SLOW_SECONDS)
    if timed:
        row.drained_after = max(created + lat for created, lat in timed) - ended
        third = max(1, len(timed) // 3)
        row.thirds = (
            h.distribution_ms([lat for _, lat in timed[:third]])["p50"],
            h.distribution_ms([lat for _, lat in timed[-third:]])["p50"],
        )
    return row


def report(system: System, row: Row) -> None:
    assert row.wrk is not None
    w = row.wrk
    print(
        f"  load: {row.connections} connections x mean pause {row.delay_ms:.1f} ms for "
        f"{w.seconds:.0f} s: achieved {w.rate:.1f} req/s (target {row.target:g}); "
        f"POST response p50 {w.latency_ms['p50']:.1f} ms, p99 {w.latency_ms['p99']:.1f} ms; "
        f"load average {row.loadavg[0]:.2f} before, {row.loadavg[1]:.2f} after"
    )
    if w.problems():
        print(f"  ! wrk: {w.problems()}")
    print(
        f"  posted (2xx) {row.posted}, stored {row.stored}, interpreted {row.interpreted}"
        + (f", NOT interpreted {row.left}" if row.left else " (every stored panel interpreted)")
    )
    if row.stored < row.posted:
        print(f"  ! {row.posted - row.stored} panels answered 2xx are not in the panels table")
    if row.stored > row.posted:
        print(
            f"  ({row.stored - row.posted} more stored than wrk counted: requests in flight "
            "when wrk stopped)"
        )
    print(f"  202 -> stored: {h.fmt_ms(row.latency)}")
    print(
        f"    p50 in the first third {row.thirds[0]:.1f} ms, last third {row.thirds[1]:.1f} ms; "
        f"last interpretation {row.drained_after:+.2f} s after the load stopped"
    )
    if row.slow:
        print(
            f"  ! {row.slow} panels took over {SLOW_SECONDS:g} s: a backlog (see the thirds "
            "above), a task lost and published again by the sweeper, or a worker that was down "
            "(see the logs below)"
        )
    print(
        f"  baseline, no-op task publish -> started ({system.noop_shape}): {h.fmt_ms(row.baseline)}"
    )
    if row.baseline_lost or row.noop_restarts:
        print(
            f"  ! baseline: {row.baseline_lost} no-op tasks never ran; its worker was started "
            f"again {row.noop_restarts} times"
        )
    if row.baseline.get("n"):
        print(
            f"  ratio: p50 {row.latency['p50'] / row.baseline['p50']:.1f}x, "
            f"p99 {row.latency['p99'] / row.baseline['p99']:.1f}x the baseline's"
        )
    runtimes = _task_runtimes(system.task_log)
    if runtimes:
        print(
            "  labinterp task run time, whole row (Celery's log, 'succeeded in'): "
            + h.fmt_ms(h.distribution_ms(runtimes))
        )
    h.report_logs(*system.logs)


def _task_runtimes(log: Path) -> list[float]:
    import re

    found = re.findall(r"succeeded in ([0-9.e-]+)s", log.read_text(errors="replace"))
    return [float(x) for x in found]


def verdicts(row: Row) -> list[str]:
    assert row.wrk is not None
    short = row.wrk.rate < 0.95 * row.target
    out = []
    if row.name == "postgres":
        for key, goal in GOAL.items():
            ok = row.latency[key] <= goal
            out.append(f"{key} {row.latency[key]:.1f} ms {'meets' if ok else 'MISSES'} <= {goal:g}")
        if short:
            out.append(f"load short of the target: {row.wrk.rate:.1f} of {row.target:g} req/s")
        return out
    why = []
    if short:
        why.append(f"achieved {row.wrk.rate:.1f} < 95% of {row.target:g} req/s")
    if not row.drained_after <= 2.0:
        why.append(f"backlog drained {row.drained_after:.1f} s after the load (> 2 s)")
    if row.left:
        why.append(f"left {row.left}")
    if row.slow:
        why.append(f"{row.slow} panels over {SLOW_SECONDS:g} s")
    if not row.thirds[1] <= 2 * row.thirds[0]:
        why.append(f"latency grew: p50 {row.thirds[0]:.0f} -> {row.thirds[1]:.0f} ms")
    verdict = "NOT sustained: " + "; ".join(why) if why else "sustained"
    out.append(
        f"{verdict} (sustained = achieved >= 95% of the target, backlog gone within 2 s of the "
        f"end, every panel interpreted, none over {SLOW_SECONDS:g} s, p50 of the last third of "
        "the panels at most twice the first third's)"
    )
    return out


def main() -> None:
    h.require_wrk()
    unknown = set(ROWS) - set(ALL_ROWS.split(","))
    if unknown:
        raise h.BenchError(f"BENCH_ROWS: unknown rows {sorted(unknown)}")
    versions = ""
    if any(r.startswith("postgres") for r in ROWS):
        versions = f"; PostgreSQL {h.require_postgres()}, Redis {h.require_redis()} ({h.REDIS_URL})"
    print("latency: 202 -> interpretation stored, at a steady load (bench/latency.py)")
    print(
        f"parameters: BENCH_RATE={RATE:g}/s, BENCH_POSTGRES_LOW_RATE={POSTGRES_LOW_RATE:g}/s, "
        f"BENCH_EMBEDDED_RATE={EMBEDDED_RATE:g}/s, "
        f"BENCH_EMBEDDED_MAX_RATE={EMBEDDED_MAX_RATE:g}/s, BENCH_SECONDS={SECONDS:g}, "
        f"BENCH_WARMUP={WARMUP:g}, BENCH_MIN_DELAY_MS={MIN_DELAY_MS:g}, "
        f"BENCH_MAX_RESPONSE_MS={MAX_RESPONSE_MS:g}, "
        f"BENCH_BASELINE_RATE={BASELINE_RATE:g}/s, BENCH_ROWS={','.join(ROWS)}; "
        f"nproc {os.cpu_count()}{versions}; rate limit off (LABINTERP_RATE_LIMIT=0)"
    )
    print(
        "measure: interpretations.created_at - panels.created_at per panel. The panel is "
        "stamped as its request is handled, before its commit and its 202, so this overstates "
        "the time from the 202 by that much; the interpretation is stamped by the worker before "
        "its own commit, so the end is early by up to one task's run time (shown per row)."
    )
    print(
        "baseline: a no-op Celery task's publish -> start through the same broker to a worker "
        "of the same settings, under the same load: the floor of the path the figure measures "
        "(a GET /healthz would time HTTP, which the figure does not contain)."
    )
    results = []
    with h.work_dir("latency") as tmp:
        plan = {
            "postgres": (RATE, lambda: postgres_system(tmp, "postgres")),
            "postgres-low": (POSTGRES_LOW_RATE, lambda: postgres_system(tmp, "postgres-low")),
            "embedded": (EMBEDDED_RATE, lambda: embedded_system(tmp, "embedded")),
            "embedded-max": (EMBEDDED_MAX_RATE, lambda: embedded_system(tmp, "embedded-max")),
        }
        for key in ROWS:
            target, start = plan[key]
            with start() as system:
                print(f"{key}: {system.shape}, target {target:g} panels/s")
                row = measure(system, Row(key, target), tmp)
                report(system, row)
                for line in verdicts(row):
                    print(f"  {line}")
            results.append(row)
    print()
    print(
        "| row | target /s | achieved /s | load | p50 | p90 | p99 | max | interpreted / stored "
        "| baseline p50 / p99 | ratio p50 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in results:
        assert row.wrk is not None
        lat, base = row.latency, row.baseline
        print(
            f"| {row.name} | {row.target:g} | {row.wrk.rate:.1f} | {row.connections} x "
            f"{row.delay_ms:.0f} ms | {lat['p50']:.1f} ms | {lat['p90']:.1f} ms | "
            f"{lat['p99']:.1f} ms | {lat['max']:.1f} ms | {row.interpreted} / {row.stored} | "
            f"{base['p50']:.1f} / {base['p99']:.1f} ms | {lat['p50'] / base['p50']:.1f}x |"
        )


if __name__ == "__main__":
    h.run_main(main)
