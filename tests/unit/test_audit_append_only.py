"""The audit trail is append-only: no code in labinterp updates or deletes an event (this
reads the source for the ways one could), the ORM refuses to, and the database refuses any
other writer (migration 0004; tests/integration/test_migrations.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from labinterp.models import AuditEvent, Base
from labinterp.models.operations import AuditEventChanged

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "labinterp").rglob("*.py"), *(ROOT / "worker").rglob("*.py")])

# an UPDATE or DELETE of the table, in SQL text, SQLAlchemy Core or the ORM's bulk forms
CHANGES = [
    re.compile(r"\b(UPDATE|DELETE\s+FROM)\s+\"?audit_events\b", re.IGNORECASE),
    re.compile(r"\b(update|delete)\(\s*(AuditEvent|audit_events)\b"),
    re.compile(r"AuditEvent\.__table__\.(update|delete)\b"),
    re.compile(r"\bquery\(\s*AuditEvent\b[^\n]*\.(update|delete)\("),
]


def changes_in(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if any(p.search(line) for p in CHANGES)]


@pytest.mark.parametrize(
    "line",
    [
        'conn.execute(text("DELETE FROM audit_events WHERE at < :t"))',
        "session.execute(update(AuditEvent).values(actor='x'))",
        "session.execute(delete(AuditEvent))",
        "AuditEvent.__table__.delete()",
        'cursor.execute("update audit_events set actor = ?")',
    ],
)
def test_the_search_finds_each_way_to_change_an_event(line: str) -> None:
    """Not vacuous: each form the search looks for is found."""
    assert changes_in(line) == [line]


def test_no_code_updates_or_deletes_an_audit_event() -> None:
    assert len(SOURCES) > 50 and any(p.name == "audit.py" for p in SOURCES)
    found = {
        str(path.relative_to(ROOT)): hits
        for path in SOURCES
        if (hits := changes_in(path.read_text(encoding="utf-8")))
    }
    assert found == {}


@pytest.fixture
def session() -> Iterator[Session]:
    """A session on the models alone (no migration, so no trigger): the ORM's own guard."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(AuditEvent(actor="cli", role="admin", action="clinic.create"))
        session.commit()
        yield session
    engine.dispose()


def test_the_orm_refuses_to_change_an_audit_event(session: Session) -> None:
    event = session.scalars(select(AuditEvent)).one()
    event.actor = "someone else"
    with pytest.raises(AuditEventChanged, match="append-only"):
        session.commit()
    session.rollback()
    assert session.scalars(select(AuditEvent.actor)).one() == "cli"


def test_the_orm_refuses_to_delete_an_audit_event(session: Session) -> None:
    session.delete(session.scalars(select(AuditEvent)).one())
    with pytest.raises(AuditEventChanged, match="append-only"):
        session.commit()
    session.rollback()
    assert len(session.scalars(select(AuditEvent)).all()) == 1
