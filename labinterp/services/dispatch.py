"""Hands work to the broker. Called only after the transaction that made the work durable
has committed, so a worker can never see an id that is not in the database yet.

A request never waits for the broker: :meth:`Dispatcher.publish_soon` hands the ids to a
background thread of the API process and returns. That thread sends whatever has gathered
meanwhile as one message (one task for many panels under load, one per panel when traffic is
light), so publishing costs a fraction of a millisecond per panel at any rate. A broker that
refuses connections, or one that has stopped answering, delays only that thread: it keeps the
ids and tries again after a pause; the panels stay `queued` in the database, and the sweeper
publishes whatever a process could not (or had not yet, when it stopped).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from labinterp import metrics
from labinterp.broker import ENQUEUED_AT_HEADER, INTERPRET_TASK, QUEUE, oldest_waiting
from labinterp.services import readiness

log = logging.getLogger(__name__)

# After a failed publish the publisher waits this long before trying again, instead of waiting
# out the client's connection retries for every panel of an outage.
BROKER_BACKOFF_SECONDS = 5.0
BATCH_LIMIT = 200  # panel ids in one message
# how long the publisher waits for more panels before it sends what it holds: a message costs
# a quarter of a millisecond of CPU, so under load several panels share one; when traffic is
# light, a panel waits these few milliseconds
LINGER_SECONDS = 0.003
PENDING_LIMIT = 20_000  # ids a process holds for the broker; beyond, the sweeper has them
DRAIN_AT_EXIT_SECONDS = 3.0  # a process that stops publishes what it holds, for this long


class Dispatcher:
    """Publishing interpretation tasks for one Celery app; one per runtime.

    ``give_up_seconds``: how long an outage of the broker may last before the publisher stops
    holding what it could not send (the sweeper sends it once the broker is back)."""

    def __init__(self, celery_app: Any, give_up_seconds: float = 60.0) -> None:
        self.celery = celery_app
        self._publisher = _Publisher(self._send, give_up_seconds)
        _publishers.add(self._publisher)

    def publish_soon(self, panel_ids: Sequence[uuid.UUID], enqueued_at: float) -> None:
        """Hand the panels to this process's publisher thread; returns at once.
        ``enqueued_at`` (epoch seconds) is when they were stamped as enqueued."""
        self._publisher.submit(list(panel_ids), enqueued_at)

    def publish_now(self, panel_ids: Iterable[uuid.UUID], enqueued_at: float) -> list[uuid.UUID]:
        """Publish now, in messages of :data:`BATCH_LIMIT` panels (the sweeper's and the CLI's
        way); returns the ids that could not be sent. A broker outage is not an error for the
        caller: the panels are durable and `queued`, and the next sweep tries again."""
        ids = list(panel_ids)
        for start in range(0, len(ids), BATCH_LIMIT):
            try:
                self._send(ids[start : start + BATCH_LIMIT], enqueued_at)
            except Exception as exc:  # kombu raises a zoo of connection errors
                metrics.PUBLISH_FAILURES.inc()
                log.warning("could not enqueue %d panel(s): %s", len(ids) - start, _kind(exc))
                return ids[start:]
        return []

    def _send(self, ids: list[uuid.UUID], enqueued_at: float) -> None:
        self.celery.send_task(
            INTERPRET_TASK,
            args=[[str(i) for i in ids]],
            headers={ENQUEUED_AT_HEADER: enqueued_at},
            retry=False,
        )

    def oldest_waiting(self) -> float | None:
        """When the oldest message still waiting in the interpretation queue was enqueued
        (None: the queue is empty); raises when the broker cannot say."""
        return oldest_waiting(self.celery, QUEUE)

    def wait_for_publishing(self, timeout: float) -> bool:
        """Wait until this process's publisher has sent (or given up on) what it was handed."""
        return self._publisher.drain(timeout)


def _kind(exc: BaseException) -> str:
    """An exception as a log line may carry it: its type, never its text (which can hold a
    broker URL with a password)."""
    return type(exc).__name__


Sender = Callable[[list[uuid.UUID], float], None]


class _Publisher:
    """A daemon thread (per process) that publishes what requests hand it, in order, as few
    messages as it can. Through a broker outage it keeps what it holds and tries again every
    :data:`BROKER_BACKOFF_SECONDS`; once the outage has lasted ``give_up_seconds`` it lets go
    of what it holds (the panels are `queued` in the database: the sweeper has them) and tries
    one message per back-off until the broker answers again."""

    def __init__(self, send: Sender, give_up_seconds: float) -> None:
        self._send = send
        self._give_up = give_up_seconds
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[list[uuid.UUID], float]] = queue.Queue()
        self._pending = 0
        self._pid = 0
        self._outage_since: float | None = None
        self._next_try = 0.0

    def submit(self, ids: list[uuid.UUID], stamp: float) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use in this process (or after a fork)
                self._queue = queue.Queue()
                self._pending = 0
                threading.Thread(
                    target=self._run, args=(self._queue,), name="labinterp-publisher", daemon=True
                ).start()
                self._pid = os.getpid()
            if self._pending + len(ids) > PENDING_LIMIT:
                log.warning("publisher backlog full; %d panel(s) left to the sweeper", len(ids))
                return
            self._pending += len(ids)
        self._queue.put((ids, stamp))

    def _run(self, pending: queue.Queue[tuple[list[uuid.UUID], float]]) -> None:
        while True:
            batch = [pending.get()]
            size = len(batch[0][0])
            until = time.monotonic() + LINGER_SECONDS
            while size < BATCH_LIMIT:  # whatever else arrives meanwhile goes along
                try:
                    item = pending.get(timeout=max(0.0, until - time.monotonic()))
                except queue.Empty:
                    break
                batch.append(item)
                size += len(item[0])
            ids = [i for item_ids, _ in batch for i in item_ids]
            try:
                self._publish(ids, min(stamp for _, stamp in batch))
            except Exception:  # never let the thread die
                log.exception("publishing %d panel(s) failed; the sweeper will", len(ids))
            finally:
                with self._lock:
                    self._pending -= len(ids)
                for _ in batch:
                    pending.task_done()

    def _publish(self, ids: list[uuid.UUID], stamp: float) -> None:
        while True:
            now = time.monotonic()
            if self._given_up(now) and now < self._next_try:
                log.info("broker down; %d panel(s) left queued for the sweeper", len(ids))
                return
            try:
                self._send(ids, stamp)
            except Exception as exc:  # kombu raises a zoo of connection errors
                metrics.PUBLISH_FAILURES.inc()
                if self._outage_since is None:
                    self._outage_since = now
                    log.warning(
                        "could not enqueue %d panel(s) (%s); trying again every %g s",
                        len(ids),
                        _kind(exc),
                        BROKER_BACKOFF_SECONDS,
                    )
                self._next_try = now + BROKER_BACKOFF_SECONDS
                if self._given_up(now):
                    log.warning(
                        "broker down for %.0f s; %d panel(s) left queued for the sweeper",
                        now - self._outage_since,
                        len(ids),
                    )
                    return
                time.sleep(BROKER_BACKOFF_SECONDS)
                continue
            if self._outage_since is not None:
                log.warning("the broker answers again; enqueued %d panel(s)", len(ids))
                self._outage_since = None
            return

    def _given_up(self, now: float) -> bool:
        return self._outage_since is not None and now - self._outage_since >= self._give_up

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for what was handed over to be sent (or let go);
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


_publishers: weakref.WeakSet[_Publisher] = weakref.WeakSet()


@atexit.register
def _drain_at_exit() -> None:
    """A gunicorn worker recycled or stopped by SIGTERM still sends the tasks of the panels it
    just took (for a few seconds; the sweeper has the rest)."""
    deadline = time.monotonic() + DRAIN_AT_EXIT_SECONDS
    for publisher in list(_publishers):
        publisher.drain(max(0.0, deadline - time.monotonic()))


def broker_reachable(celery_app: Any, timeout: float = 1.0) -> tuple[bool, str]:
    """Whether the broker answers now, within ``timeout`` seconds (one try, no retries)."""
    url = celery_app.conf.broker_url or ""
    try:
        if url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=None
            )
            try:
                client.ping()
            finally:
                client.close()
        elif url.startswith("filesystem://"):
            folder = celery_app.conf.broker_transport_options.get("data_folder_in", "")
            if not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
                log.warning("readiness: the broker folder %s is missing or not writable", folder)
                return False, "folder missing or not writable"
        else:
            with celery_app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=timeout)
        return True, "ok"
    except Exception as exc:
        # a fixed phrase for the answer; the exception (passwords masked) only in the log
        return False, readiness.failed("broker", exc)
