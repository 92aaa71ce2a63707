"""The embedded default under load from its first seconds: is every panel interpreted promptly?

Issue 5: a steady 20 panels/s started a few seconds after `labinterp serve` sometimes left one
panel `queued` until the sweeper found it (≈ 80 s) instead of ≈ 60 ms. This script starts
`labinterp serve` on a fresh instance (SQLite + the folder broker + its own worker), starts a
steady load STARTUP_DELAY seconds later (a POST refused because the API is not listening yet
is tried again), follows every panel from its 202 until GET /api/v1/panels/{id} says
`interpreted`, and flags any panel slower than SLOW_AFTER seconds; one slower than 30 s waited
for the sweeper (its message was lost). Baseline, in the same run: the median time from 202 to
`interpreted` over all panels (on a shared machine a busy neighbour alone can push panels past
2 s; a lost message shows as ≈ 60-90 s and a worker restart in the log).

After a run with a slow panel it shows what the broker folders and the serve log hold: message
files nobody consumed (by queue), empty message files, the exchange tables, and log lines about
undeliverable messages, tracebacks, worker restarts and sweeps.

    .venv/bin/python bench/embedded_startup_load.py            # 4 runs
    RUNS=10 LOAD_SECONDS=20 STARTUP_DELAY=3 .venv/bin/python bench/embedded_startup_load.py

A run with a slow panel keeps its instance folder (the path is printed); KEEP=1 keeps all.
The exit status is 1 when any panel was slow or never interpreted.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.steady_load import SteadyLoad, run_steady_load  # noqa: E402
from tests.integration.worker_process import (  # noqa: E402
    free_port,
    labinterp_cli,
    labinterp_process,
)

RUNS = int(os.environ.get("RUNS", 4))
RATE = float(os.environ.get("RATE", 20))  # panels per second
LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", 15))
STARTUP_DELAY = float(os.environ.get("STARTUP_DELAY", 3))  # seconds after serve was started
SLOW_AFTER = float(os.environ.get("SLOW_AFTER", 2))
LOST_AFTER = 30.0  # a panel this late waited for the sweeper: its message was lost
# long enough for the sweeper (every 30 s, after LABINTERP_SWEEP_AFTER = 60 s) to find a lost one
GIVE_UP_AFTER = float(os.environ.get("GIVE_UP_AFTER", 120))
KEEP = os.environ.get("KEEP") == "1"

LOG_MARKERS = (
    "Traceback",
    "Error",
    "UndeliverableWarning",
    "exited after",
    "re-enqueued",
    "could not enqueue",
    "left queued",
    "unreadable",
)


def one_run(number: int) -> tuple[SteadyLoad, float, float | None, Path]:
    """One fresh instance under load: the load, when it began and when the first worker said
    it was ready (seconds after serve started), and the instance folder."""
    instance = Path(tempfile.mkdtemp(prefix=f"labinterp-startup-{number}-"))
    env = {
        "LABINTERP_INSTANCE": str(instance),
        "DATABASE_URL": "",
        "CELERY_BROKER_URL": "",
        "LABINTERP_RATE_LIMIT": "0",  # 20 posts a second is over one token's default limit
    }
    # the clinic and its token before serve starts, so that the load begins at a chosen second
    labinterp_cli(env, "clinics", "create", "startup")
    token = (
        labinterp_cli(env, "tokens", "create", "--role", "clinic", "--clinic", "startup")
        .strip()
        .splitlines()[-1]
    )
    port = free_port()
    log = instance / "serve.log"
    with labinterp_process(["serve", "--port", str(port)], env, log):
        started, wall = time.monotonic(), time.time()
        time.sleep(STARTUP_DELAY)
        began = time.monotonic() - started
        load = run_steady_load(
            f"http://127.0.0.1:{port}",
            token,
            rate=RATE,
            seconds=LOAD_SECONDS,
            give_up_after=GIVE_UP_AFTER,
            tag=f"{number}-{os.getpid()}",
        )
    return load, began, _worker_ready(log, wall), instance


def _worker_ready(log: Path, started: float) -> float | None:
    """Seconds from serve's start to the first worker's "ready." line (the log's local time)."""
    found = re.search(
        r"^\[([\d-]+ [\d:]+,\d+): INFO/MainProcess\] \S+ ready\.", log.read_text(), re.M
    )
    if not found:
        return None
    when = dt.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return when - started


def broker_evidence(instance: Path) -> list[str]:
    """What the broker folders hold after the run: what a lost or misrouted message leaves."""
    lines = []
    queue = instance / "broker" / "queue"
    if queue.is_dir():
        files = sorted(queue.iterdir())
        by_queue = Counter(f.name.partition(".")[2] for f in files)
        lines.append(f"queue folder: {len(files)} file(s) left {dict(by_queue)}")
        empty = [f.name for f in files if f.stat().st_size == 0]
        if empty:
            lines.append(f"  EMPTY message files: {empty}")
    control = instance / "broker" / "control"
    if control.is_dir():
        for table in sorted(control.iterdir()):
            text = table.read_text(errors="replace")
            lines.append(f"control/{table.name} ({len(text)} chars): {text[:300]}")
    return lines


def log_evidence(log: Path) -> list[str]:
    lines = log.read_text(errors="replace").splitlines()
    found = [line for line in lines if any(m in line for m in LOG_MARKERS)]
    return [f"log: {line[:240]}" for line in found[:40]]


def report(
    number: int, load: SteadyLoad, began: float, ready: float | None, instance: Path
) -> bool:
    latencies = [p.latency for p in load.panels if p.latency is not None]
    slow = load.slower_than(SLOW_AFTER)
    lost = load.slower_than(LOST_AFTER)
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    slowest = "never" if load.slowest is None else f"{load.slowest:.2f} s"
    log = (instance / "serve.log").read_text(errors="replace")
    print(
        f"run {number}: {len(load.panels)} panels at {RATE:g}/s from {began:.1f} s after serve "
        f"started (worker ready at {'?' if ready is None else f'{ready:.1f}'} s); "
        f"202->interpreted p50 {p50:.0f} ms, slowest {slowest}; over {SLOW_AFTER:g} s: "
        f"{len(slow)}, over {LOST_AFTER:g} s (left to the sweeper): {len(lost)}; worker "
        f"restarts {log.count('exited after')}, sweeps that re-enqueued {log.count('re-enqueued')}"
    )
    first = min(p.accepted for p in load.panels)
    for panel in sorted(slow, key=lambda p: -(p.latency or 1e9))[:5]:
        took = "never" if panel.latency is None else f"{panel.latency:.1f} s"
        at = began + panel.accepted - first
        print(f"  slowest: panel #{panel.number} {panel.id}, 202 at ≈{at:.1f} s: {took}")
    if slow or KEEP:
        for line in broker_evidence(instance) + log_evidence(instance / "serve.log"):
            print(f"  {line}")
        print(f"  instance kept: {instance}")
    else:
        shutil.rmtree(instance, ignore_errors=True)
    return not slow


def main() -> int:
    good = 0
    for number in range(1, RUNS + 1):
        good += report(number, *one_run(number))
        sys.stdout.flush()
    print(f"{good} of {RUNS} runs had every panel interpreted within {SLOW_AFTER:g} s")
    return 0 if good == RUNS else 1


if __name__ == "__main__":
    sys.exit(main())
