"""Hands work to the broker. Called only after the transaction that made the work durable
has committed, so a worker can never see an id that is not in the database yet."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable

log = logging.getLogger(__name__)

# After a failed publish this process stops trying for a while: during a broker outage a
# clinic's POST answers 202 at once instead of waiting out the client's connection retries
# (several seconds with redis-py) on every panel. The sweeper publishes what was skipped.
BROKER_BACKOFF_SECONDS = 15.0
_backoff_lock = threading.Lock()
_backoff_until = 0.0


def _in_backoff() -> bool:
    with _backoff_lock:
        return time.monotonic() < _backoff_until


def _start_backoff() -> None:
    global _backoff_until
    with _backoff_lock:
        _backoff_until = time.monotonic() + BROKER_BACKOFF_SECONDS


def reset_backoff() -> None:
    """Forget an earlier broker failure (the broker is known to be back)."""
    global _backoff_until
    with _backoff_lock:
        _backoff_until = 0.0


def enqueue_interpretations(
    panel_ids: Iterable[uuid.UUID], *, respect_backoff: bool = True
) -> list[uuid.UUID]:
    """Publish one interpretation task per panel; returns the ids that could not be sent.

    A broker outage is not an error for the caller: the panel is already durable and
    `queued`, and the sweeper enqueues it again once the broker is back.
    """
    from labinterp.runtime import get_runtime
    from worker.celery_app import INTERPRET_TASK

    ids = list(panel_ids)
    if respect_backoff and _in_backoff():
        log.info("broker failed recently; %d panel(s) left queued for the sweeper", len(ids))
        return ids
    celery_app = get_runtime().celery
    for n, panel_id in enumerate(ids):
        try:
            celery_app.send_task(INTERPRET_TASK, args=[str(panel_id)], retry=False)
        except Exception as exc:  # kombu raises a zoo of connection errors
            log.warning("could not enqueue panel %s (%s); the sweeper will retry", panel_id, exc)
            _start_backoff()
            return ids[n:]
    if ids and not respect_backoff:
        reset_backoff()
    return []


def broker_reachable(timeout: float = 2.0) -> tuple[bool, str]:
    from labinterp.runtime import get_runtime

    try:
        with get_runtime().celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        reset_backoff()
        return True, "ok"
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
