"""A burst of 10,000 panels from 32 concurrent clients: none lost, no 5xx, all interpreted."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.servers import private_redis
from tests.faults.stack import panel_body, stack
from tests.integration.services import fresh_postgres_database
from tests.integration.worker_process import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]

PANELS = 10_000
CLIENTS = 32


def test_a_burst_of_ten_thousand_panels_from_32_clients_loses_none(tmp_path: Path) -> None:
    with (
        private_redis(tmp_path / "redis") as redis,
        fresh_postgres_database() as database_url,
        stack(tmp_path, database_url, redis.url) as s,
        s.worker("--beat", "--concurrency", "2"),
    ):
        started = time.monotonic()
        answers = s.post([panel_body(n, "BURST") for n in range(PANELS)], clients=CLIENTS)
        posted = time.monotonic() - started
        statuses = Counter(a.status for a in answers)
        print(f"{PANELS} panels from {CLIENTS} clients in {posted:.1f} s: {dict(statuses)}")
        assert statuses == {202: PANELS}
        stored = s.sql("SELECT count(*) FROM panels")
        assert stored == [(PANELS,)]
        wait_until(lambda: s.interpreted() == PANELS, 300, 1.0, "every panel interpreted")
        done = time.monotonic() - started
        print(f"all {PANELS} interpreted {done:.1f} s after the first post")
        assert s.sql("SELECT count(*) FROM interpretations") == [(PANELS,)]
