"""Thin tasks: ids in, one service call, idempotent."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy.exc import OperationalError

from labinterp.redaction import describe_exception
from labinterp.runtime import get_runtime
from labinterp.services.interpretation import interpret_panel as interpret_panel_service
from labinterp.services.interpretation import mark_failed
from labinterp.services.rulesets import active_ruleset
from labinterp.services.sweeper import sweep_queued_panels as sweep_service
from worker.celery_app import INTERPRET_TASK, SWEEP_TASK, celery_app

log = logging.getLogger(__name__)


@celery_app.task(
    name=INTERPRET_TASK,
    bind=True,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
)
def interpret_panel(self, panel_id: str) -> str:
    """Interpret one panel's current revision with the active ruleset.

    Idempotent on (revision, ruleset): a redelivery after a crash is a no-op.
    """
    rt = get_runtime()
    with rt.session_factory() as session:
        try:
            ruleset = active_ruleset(session, rt.rulesets, rt.settings.default_ruleset)
            outcome = interpret_panel_service(session, uuid.UUID(panel_id), ruleset)
        except OperationalError:
            raise  # the database blinked: retried with backoff
        except Exception as exc:
            session.rollback()
            # the exception's type and place, not its message: that may quote patient data
            log.error("interpreting panel %s failed: %s", panel_id, describe_exception(exc))
            mark_failed(session, uuid.UUID(panel_id), f"{type(exc).__name__}: {exc}")
            return "failed"
    log.info("panel %s: %s", panel_id, outcome.outcome)
    return outcome.outcome


@celery_app.task(name=SWEEP_TASK, acks_late=False)
def sweep_queued_panels() -> int:
    """Enqueue again the panels still `queued` after the sweep delay (broker outage safety net)."""
    rt = get_runtime()
    with rt.session_factory() as session:
        swept = sweep_service(session, rt.settings.sweep_after_seconds, dt.datetime.now(dt.UTC))
    if swept:
        log.warning("re-enqueued %d panels left queued", len(swept))
    return len(swept)
