"""Re-enqueues panels left `queued`: the safety net for a broker that was down at post time."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import update
from sqlalchemy.orm import Session

from labinterp.models import Panel
from labinterp.repositories import panels as repo
from labinterp.services import dispatch


def sweep_queued_panels(
    session: Session, older_than_seconds: int, now: dt.datetime, limit: int = 5000
) -> list[uuid.UUID]:
    """Enqueue again every panel still `queued` whose last enqueue is older than the cut-off.

    One transaction (stamping ``enqueued_at``), then the sends. Duplicates are harmless: the
    interpretation task is idempotent.
    """
    cutoff = now - dt.timedelta(seconds=older_than_seconds)
    ids = repo.queued_panels_to_sweep(session, cutoff, limit)
    if not ids:
        return []
    session.execute(update(Panel).where(Panel.id.in_(ids)).values(enqueued_at=now))
    session.commit()
    failed = set(dispatch.enqueue_interpretations(ids))
    return [i for i in ids if i not in failed]
