"""Handing accepted panels to the broker: the outbox's relay.

A POST stores its panel `queued` with no ``enqueued_at`` and returns; it never talks to the
broker (a broker that is down, slow or partitioned costs the clinic nothing, and the API's
processes spend no time on Celery's machinery). The relay, which runs in every worker process
(``labinterp.relay``), claims such panels and publishes them, many per message.

Claiming stamps ``enqueued_at`` (the sweeper's clock) in one statement; several relays (one per
worker, on any number of machines) never claim the same panel on PostgreSQL (``SKIP
LOCKED``), and on SQLite the database's one writer serialises them. A panel whose publish
fails is unclaimed (``enqueued_at`` back to NULL) for the next round. A relay that dies after
claiming leaves its panels to the sweeper, which publishes them again after
``LABINTERP_SWEEP_AFTER``; a duplicate message is harmless (interpreting is idempotent).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Engine, Table, bindparam, select, update

from labinterp.db import write_transaction
from labinterp.models import Panel, PanelStatus
from labinterp.services.dispatch import BATCH_LIMIT, Dispatcher

_PANELS = cast(Table, Panel.__table__)


@dataclass(frozen=True)
class Relayed:
    published: int
    unsent: int  # claimed, refused by the broker, unclaimed again
    full: bool = False  # as many as asked for: more may be waiting


def _claim(engine: Engine, now: dt.datetime, limit: int) -> list[uuid.UUID]:
    """Stamp up to ``limit`` unpublished panels, oldest first, and return them. One
    transaction."""
    unpublished = (
        select(_PANELS.c.id)
        .where(_PANELS.c.status == PanelStatus.QUEUED, _PANELS.c.enqueued_at.is_(None))
        .order_by(_PANELS.c.updated_at)
        .limit(limit)
    )
    if engine.dialect.name == "postgresql":
        unpublished = unpublished.with_for_update(skip_locked=True)
    with write_transaction(engine) as conn:
        return list(
            conn.scalars(
                update(_PANELS)
                .where(_PANELS.c.id.in_(unpublished.scalar_subquery()))
                .values(enqueued_at=now)
                .returning(_PANELS.c.id)
            )
        )


_UNCLAIM = (
    update(_PANELS)
    .where(
        _PANELS.c.id.in_(bindparam("ids", expanding=True)), _PANELS.c.enqueued_at == bindparam("at")
    )
    .values(enqueued_at=None)
)


def relay_unpublished(
    engine: Engine, dispatcher: Dispatcher, now: dt.datetime, limit: int = 5 * BATCH_LIMIT
) -> Relayed:
    """Publish what is waiting, ``limit`` panels at most: claimed in one transaction, sent in
    messages of :data:`BATCH_LIMIT`; those the broker refused are unclaimed in another."""
    claimed = _claim(engine, now, limit)
    if not claimed:
        return Relayed(0, 0)
    full = len(claimed) == limit
    unsent = dispatcher.publish_now(claimed, now.timestamp())
    if unsent:
        with write_transaction(engine) as conn:
            conn.execute(_UNCLAIM, {"ids": unsent, "at": now})
    return Relayed(len(claimed) - len(unsent), len(unsent), full)
