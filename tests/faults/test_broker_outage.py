"""Redis stopped while panels are posted: every POST is still accepted (the panel is durable
before the broker is asked), and once Redis is back every panel is interpreted within a
minute, though the Redis that came back remembers nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.servers import private_redis
from tests.faults.stack import panel_body, stack
from tests.integration.services import fresh_postgres_database
from tests.integration.worker_process import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]

PANELS = 300


def test_panels_posted_while_redis_is_down_are_accepted_and_interpreted_after(
    tmp_path: Path,
) -> None:
    with (
        private_redis(tmp_path / "redis") as redis,
        fresh_postgres_database() as database_url,
        stack(tmp_path, database_url, redis.url) as s,
        s.worker("--beat", "--concurrency", "2"),
    ):
        warm = s.post([panel_body(n, "WARM") for n in range(10)], clients=2)
        assert {a.status for a in warm} == {202}
        wait_until(lambda: s.interpreted() == 10, 60, 0.1, "the first panels interpreted")

        redis.stop()
        started = time.monotonic()
        answers = s.post([panel_body(n, "DOWN") for n in range(PANELS)], clients=8)
        took = time.monotonic() - started
        statuses = sorted({a.status for a in answers})
        print(f"{PANELS} panels posted while Redis was down in {took:.1f} s: statuses {statuses}")
        assert statuses == [202]
        assert s.statuses().get("queued") == PANELS

        time.sleep(2)  # the outage goes on a little after the posts
        redis.start()
        back = time.monotonic()
        wait_until(lambda: s.interpreted() == 10 + PANELS, 60, 0.5, "all interpreted")
        print(f"all {PANELS} interpreted {time.monotonic() - back:.1f} s after Redis came back")
        assert s.sql("SELECT count(*) FROM interpretations") == [(10 + PANELS,)]
