"""The audit trail: who read or changed what, when. Written inside the caller's transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session

from labinterp.models import AuditEvent


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
