"""Workers SIGKILLed with a thousand panels in flight: a worker started again interprets every
one of them, each exactly once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.faults.servers import private_redis
from tests.faults.stack import kill_group, panel_body, stack
from tests.integration.services import fresh_postgres_database
from tests.integration.worker_process import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]

PANELS = 1000


def test_every_panel_is_interpreted_exactly_once_after_every_worker_is_killed(
    tmp_path: Path,
) -> None:
    with (
        private_redis(tmp_path / "redis") as redis,
        fresh_postgres_database() as database_url,
        # the sweeper looks every 2 s for panels last enqueued more than 5 s ago whose
        # message is no longer waiting (those the killed workers held)
        stack(
            tmp_path,
            database_url,
            redis.url,
            LABINTERP_SWEEP_AFTER="5",
            LABINTERP_SWEEP_EVERY="2",
        ) as s,
    ):
        bodies = [panel_body(n, "KILL") for n in range(PANELS)]
        answers: list = []
        poster = threading.Thread(target=lambda: answers.extend(s.post(bodies, clients=16)))
        with s.worker("--concurrency", "2") as one, s.worker("--beat", "--concurrency", "1") as two:
            poster.start()
            wait_until(lambda: s.interpreted() >= 50, 120, 0.05, "the workers to be busy")
            for worker in (one, two):
                kill_group(worker)
            killed_at = s.statuses()
        poster.join()
        assert sorted({a.status for a in answers}) == [202], "every POST was accepted"
        left = PANELS - killed_at.get("interpreted", 0)
        print(f"workers killed at {killed_at}; {left} panels not yet interpreted")
        assert left > 0, "the workers had finished before they were killed: nothing was tested"

        with s.worker("--beat", "--concurrency", "2", name="again"):
            wait_until(lambda: s.interpreted() == PANELS, 180, 0.5, "every panel interpreted")
        rows = s.sql("SELECT count(*), count(DISTINCT (revision_id, ruleset)) FROM interpretations")
        assert rows == [(PANELS, PANELS)], "one interpretation per revision and ruleset"
        attempts = dict(s.sql("SELECT attempts, count(*) FROM panels GROUP BY attempts"))
        print(f"all {PANELS} interpreted once each; attempts per panel: {attempts}")
        assert s.statuses() == {"interpreted": PANELS}
