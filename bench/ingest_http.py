"""Ingest over real HTTP: `labinterp serve` (gunicorn, gthread) on PostgreSQL + Redis, driven by
BENCH_CLIENTS concurrent keep-alive clients for BENCH_SECONDS.

Baseline, in the same run and against the same server: GET /healthz (a request that touches
neither the database nor the broker), so the ratio shows what a durable POST costs on top of
HTTP, Flask and the client. Panels go to a scratch database that is dropped afterwards and to
Redis database 12 (flushed afterwards); no worker runs, so only the durable ingest is timed.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import redis  # noqa: E402
from ingest import scratch_postgres  # noqa: E402

from labinterp.db import upgrade_database  # noqa: E402
from labinterp.demo import SAMPLE_PANELS  # noqa: E402
from tests.integration.worker_process import (  # noqa: E402
    free_port,
    labinterp_cli,
    labinterp_process,
    wait_until,
)

CLIENTS = int(os.environ.get("BENCH_CLIENTS", 8))
SECONDS = float(os.environ.get("BENCH_SECONDS", 10))
ADMIN_URL = os.environ.get(
    "LABINTERP_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("LABINTERP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


def drive(port: int, make_request, seconds: float) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    """Every client sends requests back to back for ``seconds``; requests/s and latencies."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        i = 0
        while time.perf_counter() < stop:
            method, path, body, headers, expect = make_request(n, i)
            start = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == expect, response.status
            mine.append(time.perf_counter() - start)
            i += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - started), latencies


def cli(env: dict[str, str], *args: str) -> str:
    return labinterp_cli(env, *args).strip().splitlines()[-1]


def report(name: str, rate: float, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p95 = ordered[int(0.95 * (len(ordered) - 1))] * 1000
    print(f"{name}: {rate:,.0f} req/s, p50 {p50:.1f} ms, p95 {p95:.1f} ms")


def main() -> None:
    body = json.loads(json.dumps(SAMPLE_PANELS[0]))
    with tempfile.TemporaryDirectory() as tmp, scratch_postgres(ADMIN_URL) as database_url:
        upgrade_database(database_url)
        env = {
            "LABINTERP_INSTANCE": tmp,
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": REDIS_URL,
            "LABINTERP_RATE_LIMIT": "0",
        }
        cli(env, "clinics", "create", "bench")
        token = cli(env, "tokens", "create", "--role", "clinic", "--clinic", "bench")
        port = free_port()
        args = ["serve", "--no-worker", "--port", str(port), "--workers", "2", "--threads", "4"]
        with labinterp_process(args, env, Path(tmp) / "serve.log"):

            def up() -> bool:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    conn.request("GET", "/healthz")
                    return conn.getresponse().status == 200
                except OSError:
                    return False

            wait_until(up, 60, 0.2, "serve to answer")
            health = drive(port, lambda n, i: ("GET", "/healthz", None, {}, 200), SECONDS)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

            def post(n: int, i: int):  # type: ignore[no-untyped-def]
                body["accession"] = f"HTTP-{n}-{i}"
                return "POST", "/api/v1/panels", json.dumps(body), headers, 202

            panels = drive(port, post, SECONDS)
        redis.Redis.from_url(REDIS_URL).flushdb()
    print(f"{CLIENTS} keep-alive clients, {SECONDS:.0f} s each, gunicorn 2 processes x 4 threads")
    report("baseline GET /healthz", *health)
    report("POST /api/v1/panels, PostgreSQL + Redis", *panels)
    print(f"ratio: a durable POST costs {health[0] / panels[0]:.1f}x the baseline's time")


if __name__ == "__main__":
    main()
