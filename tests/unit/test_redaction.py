"""Log text never carries a connection password, nor the data an exception quotes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from labinterp.db import make_engine
from labinterp.redaction import describe_exception, mask_passwords


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "cannot connect to postgresql+psycopg://app:s3cr%40t@db:5432/li",
            "cannot connect to postgresql+psycopg://app:***@db:5432/li",
        ),
        ("redis://:hunter2@cache:6379/0 refused", "redis://:***@cache:6379/0 refused"),
        ("host=db user=app password=hunter2 dbname=li", "host=db user=app password=*** dbname=li"),
        ("redis://cache:6379/0 refused", "redis://cache:6379/0 refused"),  # nothing to mask
    ],
)
def test_passwords_in_urls_and_dsns_are_masked(text: str, shown: str) -> None:
    assert mask_passwords(text) == shown


PHI = "PHI-5e1b9c2d"


def _raise_nested() -> None:
    try:
        raise KeyError(PHI)
    except KeyError as inner:
        raise ValueError(f"value {PHI} is not valid") from inner


def test_an_exception_is_described_by_type_and_place_never_by_its_message() -> None:
    try:
        _raise_nested()
    except ValueError as exc:
        text = describe_exception(exc)
    assert PHI not in text
    assert text.startswith("ValueError at test_redaction.py:")
    assert "_raise_nested" in text and "raised from KeyError" in text
    assert text.endswith("(message withheld: it may hold patient data)")


def test_a_database_error_shows_no_parameters_and_sql_rows_are_not_logged_at_debug(
    tmp_path: Path,
) -> None:
    """Engines hide their parameters from errors and logs, and SQLAlchemy's logger stays at
    WARNING when the root logger is at DEBUG (which would print every row read)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    handler, level = Keep(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE patients (external_id TEXT UNIQUE)"))
            connection.execute(text("INSERT INTO patients VALUES (:id)"), {"id": PHI})
            assert connection.execute(text("SELECT external_id FROM patients")).scalar() == PHI
            with pytest.raises(IntegrityError) as failed:
                connection.execute(text("INSERT INTO patients VALUES (:id)"), {"id": PHI})
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        engine.dispose()
    assert PHI not in str(failed.value) and "parameters hidden" in str(failed.value)
    assert not [r.getMessage() for r in records if PHI in r.getMessage() or PHI in str(r.args)]
