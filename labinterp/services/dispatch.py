"""Hands work to the broker. Called only after the transaction that made the work durable
has committed, so a worker can never see an id that is not in the database yet.

A request never waits for the broker: :func:`publish_soon` hands the ids to a background
thread of the API process and returns. A broker that refuses connections, or one that has
stopped answering, delays only that thread; the panels stay `queued` in the database and the
sweeper publishes whatever this process could not (or had not yet, when it stopped).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from labinterp.services import readiness

log = logging.getLogger(__name__)

# After a failed publish this process stops trying for a while, instead of waiting out the
# client's connection retries (several seconds with redis-py) for every panel of an outage.
# The sweeper publishes what was skipped.
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


def enqueue_interpretations(panel_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """Publish one interpretation task per panel now, even during a back-off (the sweeper's
    way); returns the ids that could not be sent. A broker outage is not an error for the
    caller: the panels are durable and `queued`, and the next sweep tries again."""
    from labinterp.runtime import get_runtime

    return _send(get_runtime().celery, list(panel_ids), respect_backoff=False)


def _send(celery_app: Any, ids: list[uuid.UUID], *, respect_backoff: bool) -> list[uuid.UUID]:
    from worker.celery_app import INTERPRET_TASK

    if respect_backoff and _in_backoff():
        log.info("broker failed recently; %d panel(s) left queued for the sweeper", len(ids))
        return ids
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


PENDING_LIMIT = 10_000  # ids waiting for the publisher thread; beyond, the sweeper has them
DRAIN_AT_EXIT_SECONDS = 3.0  # a process that stops publishes what it holds, for this long


class _Publisher:
    """One daemon thread per process that publishes what requests hand it, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Any, list[uuid.UUID]]] = queue.Queue(PENDING_LIMIT)
        self._pid = 0

    def submit(self, celery_app: Any, ids: list[uuid.UUID]) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use in this process (or after a fork)
                self._queue = queue.Queue(PENDING_LIMIT)
                thread = threading.Thread(
                    target=self._run, args=(self._queue,), name="labinterp-publisher", daemon=True
                )
                thread.start()
                self._pid = os.getpid()
        try:
            self._queue.put_nowait((celery_app, ids))
        except queue.Full:
            log.warning("publisher backlog full; %d panel(s) left to the sweeper", len(ids))

    def _run(self, pending: queue.Queue[tuple[Any, list[uuid.UUID]]]) -> None:
        while True:
            celery_app, ids = pending.get()
            try:
                _send(celery_app, ids, respect_backoff=True)
            except Exception:  # never let the thread die
                log.exception("publishing %d panel(s) failed; the sweeper will retry", len(ids))
            finally:
                pending.task_done()

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for what was handed over to be sent (or given up);
        True when nothing is left. Whatever is left stays `queued` for the sweeper."""
        if self._pid != os.getpid():
            return True
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True


_publisher = _Publisher()
# a gunicorn worker recycled or stopped by SIGTERM still sends the tasks of panels it just took
atexit.register(_publisher.drain, DRAIN_AT_EXIT_SECONDS)


def publish_soon(panel_ids: Iterable[uuid.UUID]) -> None:
    """Hand interpretation tasks to this process's publisher thread; returns at once."""
    from labinterp.runtime import get_runtime

    _publisher.submit(get_runtime().celery, list(panel_ids))


def wait_for_publishing(timeout: float) -> bool:
    """Wait until this process's publisher has sent (or given up on) what it was handed."""
    return _publisher.drain(timeout)


def broker_reachable(timeout: float = 1.0) -> tuple[bool, str]:
    """Whether the broker answers now, within ``timeout`` seconds (one try, no retries), and
    a fixed phrase saying why not ("unreachable", "timed out"): never the exception's text."""
    from labinterp.runtime import get_runtime

    settings = get_runtime().settings
    try:
        if settings.broker_url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(
                settings.broker_url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=None,
            )
            try:
                client.ping()
            finally:
                client.close()
        elif settings.embedded_broker:
            folder = settings.broker_transport_options.get("data_folder_in", "")
            if not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
                log.warning("readiness: the broker folder %s is missing or not writable", folder)
                return False, "folder missing or not writable"
        else:
            with get_runtime().celery.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=timeout)
        reset_backoff()
        return True, "ok"
    except Exception as exc:
        # a fixed phrase for the answer; the exception (passwords masked) only in the log
        return False, readiness.failed("broker", exc)
