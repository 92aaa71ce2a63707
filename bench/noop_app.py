"""A Celery app for benchmarks only: one task that does nothing, on a worker shaped like
labinterp's, so a labinterp figure can be set beside what Celery alone costs in the same run.

    BENCH_NOOP_BROKER=redis://127.0.0.1:6379/5 celery -A noop_app worker -Q bench-noop -c 1

Its settings mirror labinterp's Celery app factory (labinterp/broker.py `make_celery` and the
broker options of labinterp/config.py; copied here, not imported, so that the benchmarks
import nothing of labinterp). On the folder broker it uses labinterp's own transport
(`labinterp.embedded_broker:EmbeddedTransport`, named as Celery's broker_transport: kombu's
stock one can hand a worker a message file still being written). bench/worker_throughput.py
compares them with what a running `labinterp worker` reports over Celery's remote control and
says when they differ.

Environment: BENCH_NOOP_BROKER (a redis:// URL, or filesystem:// for kombu's folder broker in
BENCH_NOOP_FOLDER, as the embedded default uses), BENCH_NOOP_QUEUE, and BENCH_NOOP_STAMPS: a
folder where each worker process appends one line per task, `<sent_at> <started_at>` (epoch
seconds; sent_at is what the publisher passed, or 0): one write(2) of a line, microseconds.
Nothing connects at import.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO, Any

from celery import Celery

BROKER = os.environ.get("BENCH_NOOP_BROKER", "redis://127.0.0.1:6379/5")
QUEUE = os.environ.get("BENCH_NOOP_QUEUE", "bench-noop")
STAMPS = os.environ.get("BENCH_NOOP_STAMPS", "")
TASK = "bench.noop"

# what labinterp's factory sets, key for key (the beat schedule aside: no sweeper here)
MIRRORED: dict[str, Any] = {
    "broker_connection_retry_on_startup": True,
    "broker_connection_timeout": 3,
    "task_serializer": "json",
    "accept_content": ["json"],
    "task_ignore_result": True,
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "task_soft_time_limit": 20,
    "task_time_limit": 30,
    "worker_hijack_root_logger": False,
}


def _transport_options(broker: str, folder: Path | None) -> dict[str, Any]:
    if broker.startswith("filesystem://"):
        folder = folder or Path(os.environ.get("BENCH_NOOP_FOLDER", "noop-broker"))
        for sub in ("queue", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.1,
        }
    return {"visibility_timeout": 3600, "socket_timeout": 10, "socket_connect_timeout": 5}


def make_app(broker: str, queue: str = QUEUE, folder: Path | None = None) -> Celery:
    """The app (a worker's, or a benchmark's for publishing) with the no-op task on it."""
    app = Celery("bench_noop", broker=broker)
    app.conf.update(
        MIRRORED,
        task_default_queue=queue,
        broker_transport_options=_transport_options(broker, folder),
    )
    if broker.startswith("filesystem://"):
        app.conf.broker_transport = "labinterp.embedded_broker:EmbeddedTransport"
    app.task(name=TASK, acks_late=True)(noop)
    return app


_out: IO[str] | None = None
_out_pid = 0


def _stamp_file() -> IO[str] | None:
    global _out, _out_pid
    if not STAMPS:
        return None
    if _out is None or _out_pid != os.getpid():  # one file per (forked) worker process
        _out = open(Path(STAMPS) / f"stamps-{os.getpid()}.txt", "a", buffering=1)  # noqa: SIM115
        _out_pid = os.getpid()
    return _out


def noop(sent_at: float = 0.0) -> None:
    """Nothing, but the moment it started (when BENCH_NOOP_STAMPS names a folder)."""
    started = time.time()
    out = _stamp_file()
    if out is not None:
        out.write(f"{sent_at:.6f} {started:.6f}\n")


app = make_app(BROKER)  # `celery -A noop_app worker`


def read_stamps(folder: Path) -> list[tuple[float, float]]:
    """Every (sent_at, started_at) the worker processes wrote."""
    pairs = []
    for path in sorted(folder.glob("stamps-*.txt")):
        for line in path.read_text().splitlines():
            sent, started = line.split()
            pairs.append((float(sent), float(started)))
    return pairs
