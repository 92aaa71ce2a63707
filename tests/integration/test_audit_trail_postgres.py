"""The audit trail on PostgreSQL: a panel's events are found through the GIN index on
``detail -> 'panel_ids'`` (a list read names its panels there), and the panel's creation,
written by the one-statement insert, says from where with which token."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from labinterp.app import create_app
from labinterp.config import load_settings
from labinterp.db import make_engine, make_session_factory, upgrade_database
from labinterp.repositories.audit import AuditFilter, audit_page
from labinterp.runtime import Runtime, build_runtime
from labinterp.services.accounts import create_clinic, create_token
from tests.api.conftest import auth, sample_panel
from tests.integration.services import fresh_postgres_database
from tests.integration.test_query_plans import _describe, _explain, _indexes, sent_statements

pytestmark = pytest.mark.postgres


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Runtime, FlaskClient, dict[str, str]]]:
    with fresh_postgres_database() as url:
        upgrade_database(url)
        settings = load_settings(
            {
                "DATABASE_URL": url,
                "LABINTERP_INSTANCE": str(tmp_path / "instance"),
                "LABINTERP_RATE_LIMIT": "0",
            }
        )
        settings.instance_path.mkdir(parents=True)
        runtime = build_runtime(settings)
        with runtime.session_factory() as session:
            create_clinic(session, "north")
            tokens = {
                "clinic": create_token(session, "clinic", ["north"]).token,
                "admin": create_token(session, "admin", []).token,
            }
        yield runtime, create_app(runtime=runtime).test_client(), tokens
        runtime.engine.dispose()


def test_panel_id_finds_the_single_and_the_list_reads_of_a_panel_on_postgresql(
    stack: tuple[Runtime, FlaskClient, dict[str, str]],
) -> None:
    _, client, tokens = stack
    ids = []
    for n in range(3):
        response = client.post(
            "/api/v1/panels",
            json=sample_panel(accession=f"PG-{n}", collected_at=f"2026-11-0{n + 1}T08:00:00Z"),
            headers=auth(tokens["clinic"]),
        )
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    mine = ids[0]
    client.get(f"/api/v1/panels/{mine}", headers=auth(tokens["clinic"]))
    client.get(f"/api/v1/panels/{ids[1]}", headers=auth(tokens["clinic"]))
    # newest collection first: the first panel, collected first, is alone on page 2
    client.get("/api/v1/panels?per_page=2&page=2", headers=auth(tokens["clinic"]))
    client.get("/api/v1/panels?per_page=2", headers=auth(tokens["clinic"]))  # the other two
    found = client.get(f"/api/v1/audit?panel_id={mine}", headers=auth(tokens["admin"]))
    assert found.status_code == 200, found.get_json()
    items = found.get_json()["items"]
    assert [e["action"] for e in items] == ["panels.read", "panel.read", "panel.create"]
    assert items[0]["panel_ids"] == [mine] and items[0]["panel_id"] is None
    created = items[-1]
    assert created["address"] == "127.0.0.1" and created["token_id"] is not None
    assert created["detail"] == {"accession": "PG-0"}


AUDIT_LOAD = """
INSERT INTO audit_events (at, actor, role, action, detail)
SELECT now() - n * INTERVAL '1 second', 'token:li_x', 'clinician', 'panels.read',
       jsonb_build_object('panel_ids', jsonb_build_array(gen_random_uuid()::text,
                                                         gen_random_uuid()::text))
FROM generate_series(1, 50000) AS n
"""


@pytest.fixture(scope="module")
def many_events() -> Iterator[tuple[Any, str]]:
    """50,000 list reads, each naming two panels, and one that names a panel to look for."""
    with fresh_postgres_database("labinterp_audit_plans") as url:
        upgrade_database(url)
        engine = make_engine(url)
        wanted = str(uuid.uuid4())
        with engine.begin() as connection:
            connection.execute(text(AUDIT_LOAD))
            connection.execute(
                text(
                    "INSERT INTO audit_events (at, actor, role, action, detail) VALUES "
                    "(now(), 'token:li_y', 'admin', 'panels.read', "
                    "jsonb_build_object('panel_ids', jsonb_build_array(CAST(:id AS text))))"
                ),
                {"id": wanted},
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE audit_events"))
        yield engine, wanted
        engine.dispose()


def test_panel_id_reads_the_gin_index_not_the_whole_trail(many_events: tuple[Any, str]) -> None:
    engine, wanted = many_events
    with make_session_factory(engine)() as session, sent_statements(engine) as sent:
        rows, total = audit_page(session, AuditFilter(panel_id=uuid.UUID(wanted)), 0, 20)
    assert total == 1 and rows[0].detail == {"panel_ids": [wanted]}
    statements = [(s, p) for s, p in sent if "FROM audit_events" in s]
    assert len(statements) == 2  # the page and its count
    for statement, parameters in statements:
        nodes = _explain(engine, statement, parameters)
        print(f"\naudit by panel: {_describe(nodes)}")
        assert "ix_audit_events_panel_ids" in _indexes(nodes), _describe(nodes)
        assert not any(
            n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "audit_events" for n in nodes
        ), _describe(nodes)
