"""Queries of the audit trail. Never commits, and never updates or deletes an event: the
trail is append-only (migration 0004 makes the database refuse both)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from labinterp.models import AuditEvent
from labinterp.repositories.dialects import audit_detail_names_panel


@dataclass(frozen=True)
class AuditFilter:
    panel_id: uuid.UUID | None = None  # the event's panel, or one of the panels it read
    actor: str | None = None
    actions: tuple[str, ...] = ()  # any of these
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # inclusive


def _where(session: Session, where: AuditFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if where.panel_id is not None:
        # a single read names its panel in the column; a list, trend or queue read names
        # every panel of its page in detail.panel_ids (one event per request)
        clauses.append(
            or_(
                AuditEvent.panel_id == where.panel_id,
                audit_detail_names_panel(session, str(where.panel_id)),
            )
        )
    if where.actor is not None:
        clauses.append(AuditEvent.actor == where.actor)
    if where.actions:
        clauses.append(AuditEvent.action.in_(where.actions))
    if where.since is not None:
        clauses.append(AuditEvent.at >= where.since)
    if where.until is not None:
        clauses.append(AuditEvent.at <= where.until)
    return clauses


def audit_page(
    session: Session, where: AuditFilter, offset: int, limit: int
) -> tuple[Sequence[AuditEvent], int]:
    """One page of events, newest first (at, then id: a stable order for events written in
    the same instant), and how many match. Two statements."""
    clauses = _where(session, where)
    rows = session.scalars(
        select(AuditEvent)
        .where(*clauses)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*clauses)) or 0
    return rows, int(total)
