"""Hands work to the broker: interpretation tasks, many panels per message, and
critical-value alerts, one per message.

Called only after the transaction that made the work durable has committed, so a worker can
never see an id that is not in the database yet. The API's processes never call it: a POST
stores its panel `queued` and a worker's relay publishes it (labinterp.services.relay); the
relay, the sweeper and the CLI do.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable
from typing import Any

from labinterp import metrics
from labinterp.broker import (
    ALERT_TASK,
    ENQUEUED_AT_HEADER,
    INTERPRET_TASK,
    QUEUE,
    REPROCESS_CHUNK_TASK,
    REPROCESS_PLAN_TASK,
    REPROCESS_QUEUE,
    oldest_waiting,
)
from labinterp.services import readiness

log = logging.getLogger(__name__)

BATCH_LIMIT = 200  # panel ids in one message


class Dispatcher:
    """Publishing interpretation tasks for one Celery app; one per runtime."""

    def __init__(self, celery_app: Any) -> None:
        self.celery = celery_app

    def publish_now(self, panel_ids: Iterable[uuid.UUID], enqueued_at: float) -> list[uuid.UUID]:
        """Publish in messages of :data:`BATCH_LIMIT` panels; returns the ids that could not
        be sent. A broker outage is not an error for the caller: the panels are durable and
        `queued`, and the next round (relay or sweeper) tries again. ``enqueued_at`` (epoch
        seconds) goes in each message's headers, for the sweeper."""
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

    def publish_alerts(
        self, alert_ids: Iterable[uuid.UUID], countdown: float | None = None
    ) -> list[uuid.UUID]:
        """Publish one delivery task per alert (``countdown``: not before that many seconds);
        returns the ids that could not be sent. Not an error for the caller either: the alerts
        are durable and pending, and the sweep publishes them again."""
        ids = list(alert_ids)
        for n, alert_id in enumerate(ids):
            try:
                self.celery.send_task(
                    ALERT_TASK, args=[str(alert_id)], countdown=countdown, retry=False
                )
            except Exception as exc:  # kombu raises a zoo of connection errors
                metrics.PUBLISH_FAILURES.inc()
                log.warning("could not enqueue %d alert(s): %s", len(ids) - n, _kind(exc))
                return ids[n:]
        return []

    def oldest_waiting(self, queue: str = QUEUE) -> float | None:
        """When the oldest message still waiting in ``queue`` (the interpretation queue) was
        enqueued (None: the queue is empty); raises when the broker cannot say."""
        return oldest_waiting(self.celery, queue)

    def publish_reprocessing(
        self,
        plans: Iterable[uuid.UUID] = (),
        chunks: Iterable[tuple[uuid.UUID, int]] = (),
        enqueued_at: float = 0.0,
    ) -> int:
        """Publish re-processing tasks (labinterp.services.reprocessing) to their own queue:
        a plan per job id, a task per (job id, chunk); returns how many could not be sent.
        Not an error for the caller: the sweeper sends again what stays undone."""
        messages: list[tuple[str, list[str | int]]] = [
            (REPROCESS_PLAN_TASK, [str(job)]) for job in plans
        ]
        messages += [(REPROCESS_CHUNK_TASK, [str(job), seq]) for job, seq in chunks]
        for n, (task, args) in enumerate(messages):
            try:
                self.celery.send_task(
                    task, args=args, headers={ENQUEUED_AT_HEADER: enqueued_at}, retry=False
                )
            except Exception as exc:  # kombu raises a zoo of connection errors
                metrics.PUBLISH_FAILURES.inc()
                log.warning(
                    "could not enqueue %d reprocessing task(s): %s", len(messages) - n, _kind(exc)
                )
                return len(messages) - n
        return 0

    def oldest_waiting_reprocessing(self) -> float | None:
        return oldest_waiting(self.celery, REPROCESS_QUEUE)


def _kind(exc: BaseException) -> str:
    """An exception as a log line may carry it: its type, never its text (which can hold a
    broker URL with a password)."""
    return type(exc).__name__


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
