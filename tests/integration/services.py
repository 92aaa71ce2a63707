"""A real PostgreSQL for the integration tests: skipped with a clear message outside CI,
required in CI (``CI=true``).

The admin URL (a role that may CREATE DATABASE) comes from ``LABINTERP_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from labinterp.db import normalise_url

DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    url = os.environ.get("LABINTERP_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_ADMIN_URL
    return normalise_url(url)


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_postgres() -> str:
    """The admin URL, once a connection to it works; else skip (fail in CI)."""
    url = postgres_admin_url()
    shown = make_url(url).render_as_string(hide_password=True)
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        _unavailable(
            f"PostgreSQL not reachable at {shown} ({type(exc).__name__}: {exc}): "
            "start it or set LABINTERP_TEST_POSTGRES_URL"
        )
    finally:
        engine.dispose()
    return url


@contextmanager
def fresh_postgres_database(prefix: str = "labinterp_test") -> Iterator[str]:
    """A new, empty database for one test (dropped afterwards); yields its URL."""
    admin_url = require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                # FORCE: a worker process the test started may still hold a connection
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
