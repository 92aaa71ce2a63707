"""Several relays (one per worker, on any number of machines) on one PostgreSQL: each panel is
claimed by exactly one of them (SKIP LOCKED), however they interleave."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from pathlib import Path

import pytest

from labinterp.services.relay import relay_unpublished
from tests.api.conftest import auth, clinic_app, sample_panel
from tests.integration.services import fresh_postgres_database

pytestmark = [pytest.mark.postgres]

PANELS = 400
RELAYS = 4


class Broker:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.published: list[uuid.UUID] = []

    def publish_now(self, ids, enqueued_at):  # type: ignore[no-untyped-def]
        with self.lock:
            self.published += list(ids)
        return []


def test_concurrent_relays_publish_each_panel_exactly_once(tmp_path: Path) -> None:
    with fresh_postgres_database() as url:
        runtime, client, token = clinic_app(
            {"LABINTERP_INSTANCE": str(tmp_path), "LABINTERP_RATE_LIMIT": "0", "DATABASE_URL": url}
        )
        ids = {
            uuid.UUID(
                client.post(
                    "/api/v1/panels", json=sample_panel(accession=f"C-{n}"), headers=auth(token)
                ).get_json()["id"]
            )
            for n in range(PANELS)
        }
        broker = Broker()
        start = threading.Barrier(RELAYS)

        def relay() -> None:
            start.wait()
            while relay_unpublished(
                runtime.engine, broker, dt.datetime.now(dt.UTC), limit=25
            ).published:
                pass

        threads = [threading.Thread(target=relay) for _ in range(RELAYS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        runtime.engine.dispose()
    print(f"{RELAYS} relays published {len(broker.published)} ids for {PANELS} panels")
    assert len(broker.published) == PANELS and set(broker.published) == ids
