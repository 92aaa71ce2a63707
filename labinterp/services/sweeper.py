"""Re-enqueues panels whose message was lost, and re-queues failed panels on request.

A panel is `queued` from its 202 until a worker stores its interpretation. A worker's relay
publishes it (labinterp.services.relay); its message can still be lost: the broker restarted
without persistence, a worker was killed while holding it, no relay has run for a while. The
sweeper publishes such panels again; it must not publish again a panel whose message is merely
waiting behind others (a backlog of 10,000 would double at every sweep). So it asks the broker
when the oldest message still waiting was enqueued: a queue is first in, first out, so a panel
enqueued before that moment is not waiting in it — it is lost, or in a worker's hands (for far
less than ``sweep_after``).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.orm import Session

from labinterp.models import FailureCode, Panel, PanelStatus
from labinterp.services import audit
from labinterp.services.audit import Actor
from labinterp.services.dispatch import Dispatcher

log = logging.getLogger(__name__)

# messages of different API processes reach the queue slightly out of order
ORDER_SLACK = dt.timedelta(seconds=5)


@dataclass(frozen=True)
class Sweep:
    enqueued: list[uuid.UUID]  # published again
    unsent: list[uuid.UUID]  # the broker refused them: the next sweep tries again
    oldest_waiting: dt.datetime | None  # when the oldest waiting message was enqueued


def sweep_queued_panels(
    session: Session,
    dispatcher: Dispatcher,
    older_than_seconds: int,
    now: dt.datetime,
    limit: int = 5000,
) -> Sweep:
    """Enqueue again every panel still `queued` that was last enqueued more than
    ``older_than_seconds`` ago and before the oldest message waiting in the broker.

    One transaction (stamping ``enqueued_at``), then the sends. Duplicates are harmless: the
    interpretation task is idempotent.
    """
    cutoff = now - dt.timedelta(seconds=older_than_seconds)
    try:
        oldest = dispatcher.oldest_waiting()
    except Exception as exc:  # the broker cannot say: fall back on the time alone
        log.warning("cannot look into the broker's queue (%s)", type(exc).__name__)
        waiting = None
    else:
        waiting = None if oldest is None else dt.datetime.fromtimestamp(oldest, dt.UTC)
        if waiting is not None:
            cutoff = min(cutoff, waiting - ORDER_SLACK)
    ids = list(
        session.scalars(
            select(Panel.id)
            .where(
                Panel.status == PanelStatus.QUEUED,
                or_(
                    Panel.enqueued_at < cutoff,
                    # never published, and no relay took it up in all that time
                    and_(Panel.enqueued_at.is_(None), Panel.updated_at < cutoff),
                ),
            )
            .order_by(Panel.updated_at)
            .limit(limit)
        )
    )
    if not ids:
        return Sweep([], [], waiting)
    # a panel published before and still queued: that try vanished, and counts as one
    vanished = case((Panel.enqueued_at.is_not(None), Panel.attempts + 1), else_=Panel.attempts)
    session.execute(
        update(Panel)
        .where(Panel.id.in_(ids))
        .values(enqueued_at=now, attempts=vanished)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    unsent = dispatcher.publish_now(ids, now.timestamp())
    if unsent:
        # unsent: back to the relays (and to the next sweep)
        session.execute(
            update(Panel)
            .where(Panel.id.in_(unsent), Panel.enqueued_at == now)
            .values(enqueued_at=None)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    sent = set(ids) - set(unsent)
    return Sweep([i for i in ids if i in sent], unsent, waiting)


@dataclass(frozen=True)
class Retried:
    panel_ids: list[uuid.UUID]
    unsent: list[uuid.UUID]


def retry_failed_panels(
    session: Session,
    dispatcher: Dispatcher,
    actor: Actor,
    now: dt.datetime,
    *,
    panel_ids: Sequence[uuid.UUID] | None = None,
    clinic_id: uuid.UUID | None = None,
    code: FailureCode | None = None,
) -> Retried:
    """Queue `failed` panels again (all, or those named, of a clinic, or with a failure code)
    with their attempts reset, then publish them. One transaction, audited per panel."""
    stmt = update(Panel).where(Panel.status == PanelStatus.FAILED)
    if panel_ids is not None:
        stmt = stmt.where(Panel.id.in_(list(panel_ids)))
    if clinic_id is not None:
        stmt = stmt.where(Panel.clinic_id == clinic_id)
    if code is not None:
        stmt = stmt.where(Panel.failure_code == code)
    rows = session.execute(
        stmt.values(
            status=PanelStatus.QUEUED,
            attempts=0,
            failure=None,
            failure_code=None,
            enqueued_at=now,
            updated_at=now,
        )
        .returning(Panel.id, Panel.clinic_id)
        .execution_options(synchronize_session=False)
    ).all()
    for panel_id, panel_clinic in rows:
        audit.record(
            session, actor, "panel.retry", clinic_id=panel_clinic, panel_id=panel_id, at=now
        )
    session.commit()
    ids = [panel_id for panel_id, _ in rows]
    return Retried(ids, dispatcher.publish_now(ids, now.timestamp()))
