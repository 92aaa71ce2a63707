"""The sweeper against a real Redis: it publishes again the panels whose message is gone, and
leaves alone the ones whose message is merely waiting behind others."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
import redis
from sqlalchemy import update

from labinterp.broker import QUEUE
from labinterp.models import Panel
from labinterp.services.relay import relay_unpublished
from labinterp.services.sweeper import sweep_queued_panels
from tests.api.conftest import auth, clinic_app, sample_panel
from tests.integration.redis_service import require_redis

pytestmark = [pytest.mark.redis]


def test_the_sweeper_publishes_lost_panels_and_not_those_waiting_behind_a_backlog(
    tmp_path: Path,
) -> None:
    url = require_redis()
    env = {
        "LABINTERP_INSTANCE": str(tmp_path),
        "LABINTERP_RATE_LIMIT": "0",
        "CELERY_BROKER_URL": url,
    }
    runtime, client, token = clinic_app(env)
    waiting = [
        uuid.UUID(
            client.post(
                "/api/v1/panels", json=sample_panel(accession=f"WAIT-{n}"), headers=auth(token)
            ).get_json()["id"]
        )
        for n in range(20)
    ]
    relay_unpublished(runtime.engine, runtime.dispatcher, dt.datetime.now(dt.UTC))
    broker = redis.Redis.from_url(url)
    assert broker.llen(QUEUE) >= 1  # no worker runs: their messages wait in the queue
    # a panel whose message was lost long ago (the broker restarted without persistence)
    lost = uuid.UUID(
        client.post(
            "/api/v1/panels", json=sample_panel(accession="LOST"), headers=auth(token)
        ).get_json()["id"]
    )
    relay_unpublished(runtime.engine, runtime.dispatcher, dt.datetime.now(dt.UTC))
    broker.rpop(QUEUE)  # ... it is not in the queue (the newest message is its own)
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with runtime.session_factory() as session:
        session.execute(update(Panel).where(Panel.id == lost).values(enqueued_at=an_hour_ago))
        session.commit()

    # ten minutes later, with the backlog still waiting: only the lost panel is published again
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    with runtime.session_factory() as session:
        sweep = sweep_queued_panels(session, runtime.dispatcher, 60, later)
    print(f"oldest message waiting since {sweep.oldest_waiting}; re-enqueued {sweep.enqueued}")
    assert sweep.enqueued == [lost]
    assert sweep.oldest_waiting is not None

    # the queue drained (a worker took every message, nobody stored anything): all are lost
    broker.delete(QUEUE)
    with runtime.session_factory() as session:
        sweep = sweep_queued_panels(
            session, runtime.dispatcher, 60, later + dt.timedelta(minutes=2)
        )
    assert sorted(sweep.enqueued) == sorted([*waiting, lost])
    assert sweep.oldest_waiting is None
    broker.flushdb()
    runtime.engine.dispose()
