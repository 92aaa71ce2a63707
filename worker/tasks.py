"""Thin tasks: ids in, one service call, idempotent.

Registered with whichever Celery app imports this module (``labinterp worker`` builds it from
settings with ``labinterp.broker.make_celery``, which names this module in ``include``); each
task finds the settings in its app's configuration. The services own the transactions, the
choice of ruleset and what a failure means; a task only says when to try again.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
import uuid
from typing import Any

from celery import shared_task
from celery.signals import worker_process_shutdown, worker_ready, worker_shutting_down
from sqlalchemy.exc import DBAPIError

from labinterp import metrics
from labinterp.broker import (
    ALERT_TASK,
    INTERPRET_TASK,
    LEGACY_INTERPRET_TASK,
    REPROCESS_CHUNK_TASK,
    REPROCESS_PLAN_TASK,
    SWEEP_TASK,
)
from labinterp.relay import Relay
from labinterp.runtime import Runtime, get_runtime
from labinterp.services import reprocessing
from labinterp.services.alerts import DeliveryOutcome, RetryPolicy, deliver_alert, sweep_lost_alerts
from labinterp.services.interpretation import interpret_panels as interpret_panels_service
from labinterp.services.sweeper import sweep_queued_panels as sweep_service
from labinterp.webhook_client import WebhookClient

log = logging.getLogger(__name__)


def _runtime(task: Any) -> Runtime:
    return get_runtime(task.app.conf.labinterp_settings)


def _is_outage(exc: BaseException) -> bool:
    """The database could not be used at all (down, restarting, a connection lost): the
    message is tried again later, and the panels stay `queued`."""
    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or type(exc).__name__ in ("OperationalError", "InterfaceError")
    )


@shared_task(name=INTERPRET_TASK, bind=True, max_retries=8)
def interpret_panels(self: Any, panel_ids: list[str]) -> str:
    """Interpret a batch of panels, each with the ruleset that accepted it.

    Idempotent on (revision, ruleset): a redelivered message is a no-op for what was done. A
    redelivered or retried message (its worker died, the database was away) is worked one
    panel per transaction.
    """
    return _interpret(self, panel_ids)


@shared_task(name=LEGACY_INTERPRET_TASK, bind=True, max_retries=8)
def interpret_panel(self: Any, panel_id: str) -> str:
    """A message of the previous release (one panel per message), still in a queue after an
    upgrade: interpreted as a batch of one."""
    return _interpret(self, [panel_id])


def _interpret(task: Any, panel_ids: list[str]) -> str:
    rt = _runtime(task)
    started = time.perf_counter()
    redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
    try:
        outcome = interpret_panels_service(
            rt.engine,
            rt.rulesets,
            [uuid.UUID(i) for i in panel_ids],
            max_attempts=rt.settings.max_attempts,
            retried=redelivered or task.request.retries > 0,
            alert_give_up=dt.timedelta(seconds=rt.settings.alert_give_up_seconds),
        )
    except Exception as exc:
        if not _is_outage(exc):
            raise
        log.warning("database unavailable (%s); trying the message again", type(exc).__name__)
        raise task.retry(countdown=min(60, 2 ** (task.request.retries + 1))) from None
    finally:
        metrics.TASK_DURATION.labels(task.name).observe(time.perf_counter() - started)
    log.info("%d panel(s): %s", len(panel_ids), outcome.summary())
    if outcome.alerts:  # committed: their own queue from here (an unsent one waits for the sweep)
        rt.dispatcher.publish_alerts(outcome.alerts)
    return outcome.summary()


@shared_task(name=SWEEP_TASK, bind=True, acks_late=False)
def sweep_queued_panels(self: Any) -> int:
    """Enqueue again the panels whose message was lost (see labinterp.services.sweeper)."""
    rt = _runtime(self)
    with rt.session_factory() as session:
        sweep = sweep_service(
            session, rt.dispatcher, rt.settings.sweep_after_seconds, dt.datetime.now(dt.UTC)
        )
    if sweep.enqueued or sweep.unsent:
        log.warning(
            "re-enqueued %d panel(s) left queued (%d could not be sent)",
            len(sweep.enqueued),
            len(sweep.unsent),
        )
    alerts = sweep_lost_alerts(
        rt.engine, rt.dispatcher, rt.settings.sweep_after_seconds, dt.datetime.now(dt.UTC)
    )
    if alerts:
        log.warning("re-enqueued %d alert(s) whose message was lost", len(alerts))
    lost = reprocessing.resume_lost_work(
        rt.engine, rt.dispatcher, rt.settings.sweep_after_seconds, dt.datetime.now(dt.UTC)
    )
    if lost.jobs or lost.chunks:
        log.warning(
            "re-enqueued %d reprocessing plan(s) and %d chunk(s) whose message was lost",
            len(lost.jobs),
            len(lost.chunks),
        )
    return len(sweep.enqueued)


@shared_task(name=REPROCESS_PLAN_TASK, bind=True, max_retries=8)
def plan_reprocessing(self: Any, job_id: str) -> int:
    """Cut a queued reprocessing job into chunks, then publish a task per chunk
    (labinterp.services.reprocessing). Idempotent on the job: planned once."""
    rt = _runtime(self)
    try:
        seqs = reprocessing.plan_job(
            rt.engine, rt.rulesets, uuid.UUID(job_id), rt.settings.reprocess_chunk_size
        )
    except Exception as exc:
        if not _is_outage(exc):
            raise
        raise self.retry(countdown=min(60, 2 ** (self.request.retries + 1))) from None
    rt.dispatcher.publish_reprocessing(
        chunks=[(uuid.UUID(job_id), seq) for seq in seqs], enqueued_at=time.time()
    )
    return len(seqs)


@shared_task(name=REPROCESS_CHUNK_TASK, bind=True, max_retries=8)
def reprocess_chunk(self: Any, job_id: str, seq: int) -> str:
    """Work one chunk of a reprocessing job (labinterp.services.reprocessing.run_chunk).
    Idempotent on (job, chunk): a redelivered chunk finds it done and does nothing."""
    rt = _runtime(self)
    started = time.perf_counter()
    try:
        outcome = reprocessing.run_chunk(
            rt.engine,
            rt.rulesets,
            uuid.UUID(job_id),
            int(seq),
            max_attempts=rt.settings.max_attempts,
        )
    except Exception as exc:
        if not _is_outage(exc):
            raise
        log.warning("database unavailable (%s); trying the chunk again", type(exc).__name__)
        raise self.retry(countdown=min(60, 2 ** (self.request.retries + 1))) from None
    finally:
        metrics.TASK_DURATION.labels(self.name).observe(time.perf_counter() - started)
    if outcome.job_status == "done":
        log.info("reprocessing job %s is done", job_id)
    return outcome.state


_webhook_client: tuple[int, WebhookClient] | None = None


def _client() -> WebhookClient:
    """This process's webhook client (its connection pools are not shared across a fork)."""
    global _webhook_client
    if _webhook_client is None or _webhook_client[0] != os.getpid():
        _webhook_client = (os.getpid(), WebhookClient())
    return _webhook_client[1]


@shared_task(name=ALERT_TASK, bind=True, max_retries=8)
def send_alert(self: Any, alert_id: str) -> str:
    """POST one critical-value alert to its clinic's webhook (labinterp.services.alerts), and
    publish the next try when it was not delivered.

    Idempotent on the alert id: a duplicate or redelivered message finds the alert leased,
    delivered or given up, and sends nothing.
    """
    rt = _runtime(self)
    started = time.perf_counter()
    try:
        delivery = deliver_alert(
            rt.engine,
            uuid.UUID(alert_id),
            client=_client(),
            retry=RetryPolicy(
                rt.settings.alert_retry_base_seconds, rt.settings.alert_retry_cap_seconds
            ),
            public_url=rt.settings.public_url,
        )
    except Exception as exc:
        if not _is_outage(exc):
            raise
        log.warning("database unavailable (%s); trying the alert again", type(exc).__name__)
        raise self.retry(countdown=min(60, 2 ** (self.request.retries + 1))) from None
    finally:
        metrics.TASK_DURATION.labels(self.name).observe(time.perf_counter() - started)
    if delivery.outcome is DeliveryOutcome.RETRYING and delivery.retry_at is not None:
        wait = (delivery.retry_at - dt.datetime.now(dt.UTC)).total_seconds()
        rt.dispatcher.publish_alerts([uuid.UUID(alert_id)], countdown=max(0.0, wait))
    return delivery.outcome.value


_relay: Relay | None = None


@worker_ready.connect
def _start_relay(sender: Any = None, **_: Any) -> None:
    """Every worker publishes the panels the API accepted (labinterp.services.relay): from a
    thread of its main process, whatever its pool."""
    global _relay
    app = sender.app if sender is not None else None
    if app is None or _relay is not None:
        return
    rt = get_runtime(app.conf.labinterp_settings)
    _relay = Relay(rt.engine, rt.dispatcher)
    _relay.start()


@worker_shutting_down.connect
def _stop_relay(**_: Any) -> None:
    global _relay
    if _relay is not None:
        _relay.stop()
        _relay = None


@worker_process_shutdown.connect
def _forget_process_metrics(pid: int | None = None, **_: Any) -> None:
    """A pool process that exits leaves no live gauges behind (multiprocess metrics)."""
    if pid is not None:
        metrics.process_exited(pid)
