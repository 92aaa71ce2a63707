"""Hands work to the broker. Called only after the transaction that made the work durable
has committed, so a worker can never see an id that is not in the database yet."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

log = logging.getLogger(__name__)


def enqueue_interpretations(panel_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """Publish one interpretation task per panel; returns the ids that could not be sent.

    A broker outage is not an error for the caller: the panel is already durable and
    `queued`, and the sweeper enqueues it again once the broker is back.
    """
    from labinterp.runtime import get_runtime
    from worker.celery_app import INTERPRET_TASK

    celery_app = get_runtime().celery
    failed: list[uuid.UUID] = []
    for panel_id in panel_ids:
        try:
            celery_app.send_task(INTERPRET_TASK, args=[str(panel_id)], retry=False)
        except Exception as exc:  # kombu raises a zoo of connection errors
            log.warning("could not enqueue panel %s (%s); the sweeper will retry", panel_id, exc)
            failed.append(panel_id)
    return failed


def broker_reachable(timeout: float = 2.0) -> tuple[bool, str]:
    from labinterp.runtime import get_runtime

    try:
        with get_runtime().celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        return True, "ok"
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
