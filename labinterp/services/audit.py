"""The audit trail: who read or changed what, when, from where.

:func:`record` writes an event inside the caller's transaction (so it commits, or rolls back,
with what it records); :func:`read_trail` is the admin's read of it. Append-only: nothing
here or elsewhere updates or deletes an event.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field, fields, replace
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session

from labinterp.models import AuditEvent
from labinterp.repositories import audit as repo
from labinterp.repositories.audit import AuditFilter


@dataclass(frozen=True)
class Actor:
    """Who is acting: a token's principal, a CLI operator or the worker."""

    name: str
    role: str
    clinic_ids: frozenset[uuid.UUID] | None = None  # None: all clinics (admin, system)
    token_id: uuid.UUID | None = None
    clinic_names: dict[uuid.UUID, str] = field(default_factory=dict)  # of clinic_ids
    extra: dict[str, Any] = field(default_factory=dict)
    # when the token behind this actor stops working (None: never); a caller that keeps
    # actors between requests must refuse one past this
    expires_at: dt.datetime | None = None
    # where the request came from (its IP address), recorded with what it does
    address: str | None = None
    # the signed-in user behind a web session or a user's token (None: a clinic or admin
    # token, the CLI, the worker)
    user_id: uuid.UUID | None = None

    def at_address(self, address: str | None) -> Actor:
        """This actor, acting from ``address`` (one request's)."""
        return self if address == self.address else replace(self, address=address)

    def expired(self, now: dt.datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @property
    def single_clinic(self) -> uuid.UUID | None:
        if self.clinic_ids is not None and len(self.clinic_ids) == 1:
            return next(iter(self.clinic_ids))
        return None


SYSTEM = Actor(name="system", role="system")


def record(
    bind: Session | Connection,
    actor: Actor,
    action: str,
    *,
    clinic_id: uuid.UUID | None = None,
    panel_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> None:
    """Add the event to the caller's transaction: an ORM session's, or a Core connection's
    (set-based services that use no session)."""
    event = {
        "at": at or dt.datetime.now(dt.UTC),
        "actor": actor.name,
        "role": actor.role,
        "action": action,
        "clinic_id": clinic_id,
        "panel_id": panel_id,
        "detail": detail,
        "address": actor.address,
        "token_id": actor.token_id,
    }
    if isinstance(bind, Session):
        bind.add(AuditEvent(**event))
    else:
        bind.execute(insert(AuditEvent), event)


@dataclass(frozen=True)
class AuditEntry:
    """An event as the trail shows it; ``panel_ids`` are the panels a read of several named."""

    id: int
    at: dt.datetime
    actor: str
    role: str
    action: str
    clinic_id: uuid.UUID | None
    panel_id: uuid.UUID | None
    panel_ids: list[str]
    address: str | None
    token_id: uuid.UUID | None
    detail: dict[str, Any] | None


def entry_of(row: AuditEvent) -> AuditEntry:
    detail = row.detail
    named = detail.get("panel_ids") if isinstance(detail, dict) else None
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        role=row.role,
        action=row.action,
        clinic_id=row.clinic_id,
        panel_id=row.panel_id,
        panel_ids=[str(p) for p in named] if isinstance(named, list) else [],
        address=row.address,
        token_id=row.token_id,
        detail=detail,
    )


def read_trail(
    session: Session, actor: Actor, where: AuditFilter, page: int, per_page: int
) -> tuple[list[AuditEntry], int]:
    """One page of the trail, newest first, and how many events match. One transaction: who
    read the trail, and with which filter, is itself recorded (``audit.read``, after the
    query, so it is not on the page it describes)."""
    rows, total = repo.audit_page(session, where, (page - 1) * per_page, per_page)
    entries = [entry_of(row) for row in rows]
    record(
        session,
        actor,
        "audit.read",
        # the panel asked about stays in the filter, not the panel_id column: a search of a
        # panel's trail lists what happened to the panel, not who searched it before
        detail={"filter": filter_words(where), "page": page, "total": total},
    )
    session.commit()
    return entries, total


def filter_words(where: object, *, omit: Collection[str] = ()) -> dict[str, Any]:
    """A filter dataclass as an event's detail records it: the fields given, as JSON."""
    words: dict[str, Any] = {}
    for item in fields(where):  # type: ignore[arg-type]
        value = getattr(where, item.name)
        if item.name in omit or value is None or value == ():
            continue
        if isinstance(value, dt.datetime):
            words[item.name] = value.isoformat()
        elif isinstance(value, tuple | list | frozenset | set):
            words[item.name] = [str(v) for v in value]
        elif isinstance(value, str | int | bool):
            words[item.name] = value
        else:
            words[item.name] = str(value)
    return words
