"""The migrations on a real PostgreSQL: they build exactly the models' schema, and undo it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from labinterp.db import (
    alembic_config,
    database_is_current,
    make_engine,
    make_session_factory,
    upgrade_database,
)
from labinterp.models import Base, Clinic, Panel, PanelRevision, Patient
from tests.integration.services import fresh_postgres_database

pytestmark = pytest.mark.postgres


def schema_differences(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_models_schema_on_postgresql() -> None:
    """Autogenerate finds nothing to do after `upgrade head` on PostgreSQL (JSONB, UUID,
    BIGSERIAL, timestamptz): migrations and models agree."""
    with fresh_postgres_database() as url:
        assert not database_is_current(url)
        upgrade_database(url)
        assert database_is_current(url)
        assert schema_differences(url) == []


def test_downgrade_to_base_then_upgrade_again_round_trips_on_postgresql() -> None:
    with fresh_postgres_database() as url:
        upgrade_database(url)
        command.downgrade(alembic_config(url), "base")
        assert tables(url) == {"alembic_version"}
        assert not database_is_current(url)
        upgrade_database(url)
        assert database_is_current(url)
        assert schema_differences(url) == []
        assert tables(url) == set(Base.metadata.tables) | {"alembic_version"}


def test_postgres_urls_as_platforms_spell_them_work() -> None:
    """`postgres://` and `postgresql://` mean psycopg 3, for upgrading and for the engine."""
    with fresh_postgres_database() as url:
        bare = url.replace("postgresql+psycopg://", "postgres://", 1)
        upgrade_database(bare)
        assert database_is_current(url.replace("postgresql+psycopg://", "postgresql://", 1))
        engine = make_engine(bare)
        assert engine.dialect.driver == "psycopg"
        assert engine.pool._pre_ping
        engine.dispose()


def test_json_and_timestamps_round_trip_exactly_on_postgresql() -> None:
    """JSONB keeps exact decimals (1.10 stays 1.10) and timestamps come back as UTC."""
    with fresh_postgres_database() as url:
        upgrade_database(url)
        engine = make_engine(url)
        try:
            collected = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
            with make_session_factory(engine)() as session:
                clinic = Clinic(name="North")
                patient = Patient(clinic=clinic, external_id="P-1", sex="female")
                panel = Panel(
                    clinic=clinic,
                    patient=patient,
                    accession="LAB-1",
                    status="queued",
                    current_revision=1,
                    collected_at=collected,
                )
                session.add(
                    PanelRevision(
                        panel=panel,
                        revision=1,
                        content_hash="0" * 64,
                        collected_at=collected,
                        sex="female",
                        hemolyzed=False,
                        body={"value": Decimal("1.10")},
                    )
                )
                session.commit()
            with make_session_factory(engine)() as session:
                revision = session.scalars(select(PanelRevision)).one()
                assert revision.body == {"value": Decimal("1.10")}
                assert str(revision.body["value"]) == "1.10"
                assert revision.collected_at == collected
                assert revision.collected_at.utcoffset() == dt.timedelta(0)
        finally:
            engine.dispose()
