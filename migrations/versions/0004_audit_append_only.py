"""The audit trail is append-only in the database too: UPDATE and DELETE of an audit event
are refused (and TRUNCATE, on PostgreSQL), whoever connects.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

labinterp never updates or deletes an event (tests/unit/test_audit_append_only.py checks the
code); these triggers make that hold for anything else with the application's credentials.
An operator who must purge old events (a retention policy) drops the trigger as the table's
owner, deliberately, and records why.

On SQLite a table rebuilt by a later migration (``batch_alter_table("audit_events")`` copies
it to a new table) loses its triggers: such a migration must create them again
(tests/integration/test_migrations.py checks them at head on both databases).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "audit events are append-only"

_POSTGRES_UP = [
    f"""
    CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{MESSAGE}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
    """,
    """
    CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()
    """,
]
_POSTGRES_DOWN = [
    "DROP TRIGGER audit_events_no_truncate ON audit_events",
    "DROP TRIGGER audit_events_no_update_or_delete ON audit_events",
    "DROP FUNCTION audit_events_append_only()",
]
_SQLITE_UP = [
    f"""
    CREATE TRIGGER audit_events_no_{operation.lower()}
    BEFORE {operation} ON audit_events
    BEGIN
        SELECT RAISE(ABORT, '{MESSAGE}: {operation} refused');
    END
    """
    for operation in ("UPDATE", "DELETE")
]
_SQLITE_DOWN = ["DROP TRIGGER audit_events_no_delete", "DROP TRIGGER audit_events_no_update"]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRES_UP if postgres else _SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRES_DOWN if postgres else _SQLITE_DOWN:
        op.execute(statement)
