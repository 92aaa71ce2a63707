"""Limits that keep one bad statement or task from holding the service."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from labinterp.api.problems import database_unavailable
from labinterp.broker import HARD_TIME_LIMIT, SOFT_TIME_LIMIT, SWEEP_QUEUE, SWEEP_TASK, make_celery
from labinterp.config import load_settings
from labinterp.db import make_engine
from tests.integration.services import fresh_postgres_database


@pytest.mark.postgres
def test_a_statement_running_past_the_statement_timeout_is_cancelled_and_answered_503() -> None:
    """LABINTERP_STATEMENT_TIMEOUT (default 10 s) reaches PostgreSQL: a statement running
    longer is cancelled, and the API's error handler answers such an error with a 503."""
    with fresh_postgres_database() as url:
        engine = make_engine(url, statement_timeout_seconds=1)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "1s"
                with pytest.raises(OperationalError) as cancelled:
                    conn.execute(text("SELECT pg_sleep(3)"))
            assert database_unavailable(cancelled.value)
        finally:
            engine.dispose()
    assert load_settings({}).statement_timeout_seconds == 10


def test_tasks_have_time_limits_and_the_sweeper_a_queue_of_its_own(tmp_path) -> None:
    app = make_celery(load_settings({"LABINTERP_INSTANCE": str(tmp_path)}))
    assert (app.conf.task_soft_time_limit, app.conf.task_time_limit) == (
        SOFT_TIME_LIMIT,
        HARD_TIME_LIMIT,
    )
    assert SOFT_TIME_LIMIT < HARD_TIME_LIMIT < load_settings({}).sweep_after_seconds
    assert app.amqp.router.route({}, SWEEP_TASK)["queue"].name == SWEEP_QUEUE
