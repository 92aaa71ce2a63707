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
from labinterp.services.relay import relay_unpublished
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


def test_broker_down_at_post_answers_202_and_a_worker_relays_the_panels_once_it_is_back(
    stack, tmp_path
):
    """The API never asks the broker. A relay that finds the broker down leaves the panels
    unpublished (not lost); a worker started once the broker answers publishes and
    interprets them."""
    env, runtime, _, token = stack
    down = {**env, "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}
    offline = build_runtime(load_settings(down))
    client = create_app(runtime=offline).test_client()
    posted = [
        client.post(
            "/api/v1/panels", json=sample_panel(accession=f"OUTAGE-{n}"), headers=auth(token)
        )
        for n in range(2)
    ]
    for response in posted:
        assert response.status_code == 202 and response.get_json()["status"] == "queued"
    ready = client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.get_json()["checks"]
    assert checks["database"]["ok"] is True and checks["broker"]["ok"] is False

    relayed = relay_unpublished(offline.engine, offline.dispatcher, dt.datetime.now(dt.UTC))
    assert (relayed.published, relayed.unsent) == (0, 2)
    assert _count(runtime, Panel, Panel.enqueued_at.is_(None)) == 2  # for the next relay
    with labinterp_process(["worker", "--concurrency", "1"], env, tmp_path / "worker.log"):
        wait_until(
            lambda: _count(runtime, Panel, Panel.status == "interpreted") == 2,
            60,
            0.1,
            "the relayed panels to be interpreted",
        )
    offline.engine.dispose()


def test_the_sweeper_publishes_panels_no_relay_took_up(stack):
    """No worker (so no relay) ran for longer than LABINTERP_SWEEP_AFTER: the sweeper
    publishes the panels itself."""
    _env, runtime, client, token = stack
    ids = [
        client.post(
            "/api/v1/panels", json=sample_panel(accession=f"NORELAY-{n}"), headers=auth(token)
        ).get_json()["id"]
        for n in range(3)
    ]
    with runtime.session_factory() as session:
        early = sweep_queued_panels(session, runtime.dispatcher, 60, dt.datetime.now(dt.UTC))
        later = sweep_queued_panels(
            session, runtime.dispatcher, 60, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=61)
        )
    assert early.enqueued == []  # the relays' turn
    assert sorted(str(i) for i in later.enqueued) == sorted(ids)


def test_the_same_accession_posted_at_once_from_many_threads_is_one_panel(stack):
    _env, runtime, client, token = stack
    same = [sample_panel(accession="RACE") for _ in range(6)]
    assert post_at_once(client.application, token, same) == [200] * 5 + [202]
    assert _count(runtime, Panel, Panel.accession == "RACE") == 1
    different = differing_bodies("RACE-2", 6)
    assert post_at_once(client.application, token, different) == [202] + [409] * 5
    assert _count(runtime, Panel, Panel.accession == "RACE-2") == 1
