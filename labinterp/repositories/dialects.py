"""What differs between the two databases labinterp runs on, in one place."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, TextClause, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def dialect_name(bind: Session | Connection) -> str:
    return (bind.get_bind().dialect if isinstance(bind, Session) else bind.dialect).name


def insert(bind: Session | Connection, table: Any) -> Any:
    """INSERT with ON CONFLICT (and RETURNING), for the bind's database."""
    if dialect_name(bind) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def audit_detail_names_panel(bind: Session | Connection, panel_id: str) -> TextClause:
    """``audit_events.detail["panel_ids"]`` holds ``panel_id`` (a read of several panels).

    PostgreSQL: JSONB containment on ``detail -> 'panel_ids'``, written exactly as the GIN
    index ix_audit_events_panel_ids is (a literal key, not a parameter, or the planner cannot
    match the index's expression). SQLite: the array's elements through json_each.
    """
    if dialect_name(bind) == "postgresql":
        return text("(audit_events.detail -> 'panel_ids') @> CAST(:panel_ids AS jsonb)").bindparams(
            panel_ids=json.dumps([panel_id])
        )
    return text(
        "EXISTS (SELECT 1 FROM json_each(audit_events.detail, '$.panel_ids') "
        "WHERE json_each.value = :panel_id)"
    ).bindparams(panel_id=panel_id)
