"""Several `labinterp worker` processes on one machine, as the README runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from labinterp.broker import make_celery
from labinterp.config import load_settings
from tests.integration.redis_service import require_redis
from tests.integration.worker_process import labinterp_process, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def test_two_workers_on_one_machine_are_two_celery_nodes(tmp_path: Path) -> None:
    """Each worker has a node name of its own (Celery's default, celery@HOST, is one name for
    all of them: `celery inspect` then sees one node and warns of duplicate node names)."""
    env = {"CELERY_BROKER_URL": require_redis(), "LABINTERP_INSTANCE": str(tmp_path / "i")}
    control = make_celery(load_settings(env)).control
    with (
        labinterp_process(["worker", "--concurrency", "1"], env, tmp_path / "w1.log") as one,
        labinterp_process(["worker", "--concurrency", "1"], env, tmp_path / "w2.log") as two,
    ):
        # other workers on this Redis database may answer too: look for these two
        ours = {f"labinterp-{one.pid}@", f"labinterp-{two.pid}@"}

        def answered() -> set[str]:
            names = {name for reply in control.ping(timeout=1.0) for name in reply}
            return {prefix for prefix in ours for name in names if name.startswith(prefix)}

        wait_until(lambda: answered() == ours, 60, 0.5, f"nodes {sorted(ours)} to answer")
