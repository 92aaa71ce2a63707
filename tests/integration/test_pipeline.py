"""PostgreSQL + Redis + a real Celery worker process: the production shape."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from labinterp.app import create_app
from labinterp.config import load_settings
from labinterp.db import upgrade_database
from labinterp.models import Interpretation, Panel
from labinterp.runtime import build_runtime
from labinterp.services.accounts import create_clinic, create_token
from labinterp.services.interpretation import BatchOutcome, interpret_panels
from labinterp.services.sweeper import sweep_queued_panels
from tests.api.conftest import auth, differing_bodies, post_at_once, sample_panel
from tests.integration.redis_service import require_redis
from tests.integration.services import fresh_postgres_database
from tests.integration.worker_process import labinterp_process, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]


@pytest.fixture
def stack(tmp_path: Path):  # type: ignore[no-untyped-def]
    broker = require_redis()
    with fresh_postgres_database() as database_url:
        upgrade_database(database_url)
        env = {
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker,
            "LABINTERP_INSTANCE": str(tmp_path / "instance"),
            "LABINTERP_RATE_LIMIT": "0",
        }
        runtime = build_runtime(load_settings(env))
        client = create_app(runtime=runtime).test_client()
        with runtime.session_factory() as session:
            create_clinic(session, "pg-clinic")
            token = create_token(session, "clinic", ["pg-clinic"]).token
        yield env, runtime, client, token
        runtime.engine.dispose()


def _count(runtime, model, *where):  # type: ignore[no-untyped-def]
    with runtime.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_posted_panels_are_interpreted_by_a_separate_worker_through_redis(stack, tmp_path):
    env, runtime, client, token = stack
    ids = []
    for n in range(20):
        response = client.post(
            "/api/v1/panels", json=sample_panel(accession=f"PG-{n}"), headers=auth(token)
        )
        assert response.status_code == 202
        ids.append(response.get_json()["id"])
    with labinterp_process(["worker", "--concurrency", "2"], env, tmp_path / "worker.log"):
        wait_until(
            lambda: _count(runtime, Panel, Panel.status == "interpreted") == 20,
            60,
            0.1,
            "20 panels interpreted by the worker",
        )
    assert _count(runtime, Interpretation) == 20
    document = client.get(f"/api/v1/panels/{ids[0]}", headers=auth(token)).get_json()
    finding = next(
        f for f in document["interpretation"]["findings"] if f["code"] == "hypomagnesemia"
    )
    assert str(finding["value"]) == "0.45"  # NUMERIC and JSONB keep exact decimals
    assert "Traceback" not in (tmp_path / "worker.log").read_text()


def test_interpreting_twice_even_concurrently_stores_one_interpretation(stack):
    _env, runtime, client, token = stack
    panel_id = uuid.UUID(
        client.post("/api/v1/panels", json=sample_panel(), headers=auth(token)).get_json()["id"]
    )
    outcomes: list[BatchOutcome] = []

    def run() -> None:
        outcomes.append(
            interpret_panels(runtime.engine, runtime.rulesets, [panel_id], max_attempts=5)
        )

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 4, "a worker raised instead of finding the interpretation stored"
    assert sum(len(o.interpreted) for o in outcomes) == 1
    assert not any(o.failed for o in outcomes)
    assert _count(runtime, Interpretation, Interpretation.panel_id == panel_id) == 1


def test_broker_down_at_post_answers_202_and_the_sweeper_recovers_the_panel(stack, tmp_path):
    env, runtime, _, token = stack
    down = {**env, "CELERY_BROKER_URL": "redis://127.0.0.1:1/0", "LABINTERP_PUBLISH_GIVE_UP": "0"}
    offline = build_runtime(load_settings(down))
    client = create_app(runtime=offline).test_client()
    posted = [
        client.post(
            "/api/v1/panels", json=sample_panel(accession=f"OUTAGE-{n}"), headers=auth(token)
        )
        for n in range(2)
    ]
    # the publisher lets go of what it could not send (LABINTERP_PUBLISH_GIVE_UP=0 here)
    assert offline.dispatcher.wait_for_publishing(30)
    for response in posted:
        assert response.status_code == 202 and response.get_json()["status"] == "queued"
    ready = client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.get_json()["checks"]
    assert checks["database"]["ok"] is True and checks["broker"]["ok"] is False

    with runtime.session_factory() as session:  # the broker is back: the sweeper sends them
        swept = sweep_queued_panels(
            session, runtime.dispatcher, 0, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        )
    assert sorted(str(i) for i in swept.enqueued) == sorted(r.get_json()["id"] for r in posted)
    with labinterp_process(["worker", "--concurrency", "1"], env, tmp_path / "worker.log"):
        wait_until(
            lambda: _count(runtime, Panel, Panel.status == "interpreted") == 2,
            60,
            0.1,
            "the swept panels to be interpreted",
        )
    offline.engine.dispose()


def test_the_same_accession_posted_at_once_from_many_threads_is_one_panel(stack):
    _env, runtime, client, token = stack
    same = [sample_panel(accession="RACE") for _ in range(6)]
    assert post_at_once(client.application, token, same) == [200] * 5 + [202]
    assert _count(runtime, Panel, Panel.accession == "RACE") == 1
    different = differing_bodies("RACE-2", 6)
    assert post_at_once(client.application, token, different) == [202] + [409] * 5
    assert _count(runtime, Panel, Panel.accession == "RACE-2") == 1
