"""PostgreSQL restarted under a steady load of posts: every answer is 202 or 503 with
Retry-After (never a 500), and every panel answered 202 is in the database afterwards."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.servers import private_postgres, private_redis
from tests.faults.stack import SteadyLoad, stack

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_a_database_restart_under_load_answers_202_or_503_and_loses_nothing(
    tmp_path: Path,
) -> None:
    with (
        private_redis(tmp_path / "redis") as redis,
        private_postgres() as postgres,
        stack(tmp_path, postgres.url, redis.url) as s,
    ):
        with SteadyLoad(s.port, s.token, clients=6) as load:
            time.sleep(2)
            before = len(load.answers)
            postgres.restart(pause=2.0)
            restarted = len(load.answers)
            time.sleep(3)
        statuses = Counter(a.status for a in load.answers)
        print(
            f"{len(load.answers)} posts ({before} before the restart, {restarted - before} "
            f"while it was down): {dict(statuses)}"
        )
        assert set(statuses) <= {202, 503}, "only 202 or 503, never a 500 or a cut connection"
        assert statuses[503] > 0, "the database was never seen down: nothing was tested"
        assert statuses[202] > before, "posts were accepted again after the restart"
        assert all(a.retry_after for a in load.answers if a.status == 503)

        accepted = {a.accession for a in load.answers if a.status == 202}
        stored = {row[0] for row in s.sql("SELECT accession FROM panels")}
        assert accepted <= stored, f"{len(accepted - stored)} panels answered 202 are missing"
        print(f"all {len(accepted)} panels answered 202 are stored")
