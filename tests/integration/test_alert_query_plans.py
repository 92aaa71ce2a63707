"""Making a batch's alerts, in the worker's transaction, reads panels by primary key: never a
scan of every panel, however many there are (EXPLAIN on PostgreSQL with 20,000 panels)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import text

from labinterp.db import make_engine, upgrade_database
from labinterp.repositories.alerts import create_alerts
from tests.integration.services import fresh_postgres_database
from tests.integration.test_query_plans import LOAD, _describe, _explain, sent_statements

pytestmark = pytest.mark.postgres


def test_making_alerts_reads_the_panels_of_the_batch_by_primary_key():
    with fresh_postgres_database("labinterp_alert_plans") as url:
        upgrade_database(url)
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                for statement in LOAD:
                    conn.execute(text(statement))
                conn.execute(
                    text(
                        "INSERT INTO clinic_webhooks (clinic_id, url, secret, created_at, "
                        "updated_at) SELECT id, 'https://x.example/h', 'secret-0123456789ab', "
                        "now(), now() FROM clinics"
                    )
                )
                panels = list(conn.scalars(text("SELECT id FROM panels LIMIT 50")))
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
            now = dt.datetime.now(dt.UTC)
            batch = [(uuid.uuid4(), panel) for panel in panels]
            with engine.begin() as conn, sent_statements(engine) as sent:
                assert create_alerts(conn, batch, now, now) == []  # none shows these
            [(statement, parameters)] = [s for s in sent if "FROM panels" in s[0]]
            nodes = _explain(engine, statement, parameters)
            print(f"\nalerts of a batch: {_describe(nodes)}")
            scanned = [n.get("Relation Name") for n in nodes if n["Node Type"] == "Seq Scan"]
            assert "panels" not in scanned, _describe(nodes)
            assert "pk_panels" in {n.get("Index Name") for n in nodes}, _describe(nodes)
        finally:
            engine.dispose()
