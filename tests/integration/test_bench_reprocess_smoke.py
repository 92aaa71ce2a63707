"""bench/reprocess.py in its smoke mode (300 panels): the benchmark still runs end to end
(fill, floor, dry and real runs through a real worker, import) and prints its table. Figures
are not checked: speed is the benchmark's business, not a test's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.redis_service import require_redis
from tests.integration.services import require_postgres
from tests.integration.worker_process import REPO

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]


def test_the_reprocessing_benchmark_runs_in_its_smoke_mode() -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")},
        "BENCH_SMOKE": "1",
        "LABINTERP_BENCH_POSTGRES_URL": require_postgres(),
        "LABINTERP_BENCH_REDIS_URL": require_redis(),
    }
    done = subprocess.run(
        [sys.executable, "bench/reprocess.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| 300 |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2].endswith("s)") and cells[8].endswith("panels/s"), row
