"""The embedded default end to end: how long after the 202 a panel reads `interpreted`.

Starts `labinterp serve` with no configuration (SQLite + kombu's filesystem broker + a real
worker process) in a scratch instance, posts BENCH_N panels one at a time, and polls each
until it is interpreted. Baseline, in the same run: the round trip of a GET /healthz to the
same server (what any request costs), so the ratio shows what queueing and interpretation add.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labinterp.demo import SAMPLE_PANELS  # noqa: E402
from tests.integration.worker_process import (  # noqa: E402
    free_port,
    http_json,
    labinterp_cli,
    labinterp_process,
    wait_until,
)

N = int(os.environ.get("BENCH_N", 30))


def call(method: str, url: str, token: str | None = None, body: object = None) -> dict:
    return http_json(method, url, token, body)[1]


def cli(env: dict[str, str], *args: str) -> str:
    return labinterp_cli(env, *args).strip().splitlines()[-1]


def ready(base: str) -> bool:
    try:
        call("GET", f"{base}/readyz")
        return True
    except OSError:
        return False


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"LABINTERP_INSTANCE": tmp, "DATABASE_URL": "", "CELERY_BROKER_URL": ""}
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with labinterp_process(["serve", "--port", str(port)], env, Path(tmp) / "serve.log"):
            wait_until(lambda: ready(base), 60, 0.2, "serve to be ready")
            cli(env, "clinics", "create", "bench")
            token = cli(env, "tokens", "create", "--role", "clinic", "--clinic", "bench")

            rtt = []
            for _ in range(N):
                start = time.perf_counter()
                call("GET", f"{base}/healthz")
                rtt.append(time.perf_counter() - start)

            latencies = []
            for n in range(N):
                panel = json.loads(json.dumps(SAMPLE_PANELS[0], default=str))
                panel["accession"] = f"LATENCY-{n}"
                start = time.perf_counter()
                posted = call("POST", f"{base}/api/v1/panels", token, panel)
                url = f"{base}/api/v1/panels/{posted['id']}"
                while call("GET", url, token)["status"] == "queued":
                    time.sleep(0.005)
                latencies.append(time.perf_counter() - start)

    base_ms = statistics.median(rtt) * 1000
    p50 = statistics.median(latencies) * 1000
    p95 = sorted(latencies)[int(0.95 * (len(latencies) - 1))] * 1000
    print(f"baseline GET /healthz round trip: p50 {base_ms:.1f} ms")
    print(f"POST -> interpreted, embedded default, {N} panels: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    print(f"ratio p50/baseline: {p50 / base_ms:.0f}x")


if __name__ == "__main__":
    main()
