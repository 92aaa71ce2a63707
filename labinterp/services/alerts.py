"""Critical-value alerts: every critical interpretation of a clinic with a webhook is POSTed
to that webhook, signed, until it answers 2xx or the alert's give-up time comes.

The alert row is made in the worker's transaction that stores the interpretation
(labinterp.services.interpretation), at most one per interpretation (a unique column), and
its task is published after that commit on a queue of its own: sending never holds up
interpreting. :func:`deliver_alert` is what the task runs; :func:`sweep_lost_alerts`
publishes again, from the periodic sweep, the alerts whose message was lost.

At least once, never twice at a time: a delivery leases its alert before it POSTs, so a
duplicate message or a second worker sends nothing while it holds the lease, and a delivered
alert is never sent again. A worker that dies after the webhook answered 2xx but before
recording it leaves the alert to be sent again once its lease ends: receivers dedupe on the
alert id (`X-Labinterp-Alert-Id`, and `id` in the body).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from labinterp import metrics
from labinterp.db import write_transaction
from labinterp.repositories import alerts as repo
from labinterp.repositories.alerts import AlertRow, ClaimedAlert
from labinterp.services.dispatch import Dispatcher
from labinterp.webhook_client import WebhookClient
from labinterp.webhook_signature import ALERT_ID_HEADER, SIGNATURE_HEADER, signature_header

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]

ALERT_TYPE = "critical_value"
# how long a delivery holds its alert: far longer than a POST may take (webhook_client), so
# only a delivery whose worker died ever loses its lease
LEASE = dt.timedelta(seconds=60)
# a retry's message may run a little before its time (clocks of two machines): it still counts
EARLY = dt.timedelta(seconds=2)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``base_seconds`` after the first failure, doubling, never more
    than ``cap_seconds``, each delay varied by ±25 % so that alerts that failed together
    (a webhook down for an hour) are not all tried again in the same second."""

    base_seconds: float
    cap_seconds: float

    def delay(self, failures: int, jitter: float) -> dt.timedelta:
        """The wait after the ``failures``-th failed try; ``jitter`` is uniform in [0, 1)."""
        exponent = min(max(failures, 1) - 1, 32)
        seconds = self.base_seconds * 2**exponent * (0.75 + 0.5 * jitter)
        return dt.timedelta(seconds=min(self.cap_seconds, seconds))


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRYING = "retrying"  # to be tried again at ``retry_at``
    GAVE_UP = "gave_up"
    NOT_DUE = "not_due"  # delivered or given up already, leased to another delivery, or early


@dataclass(frozen=True)
class Delivery:
    outcome: DeliveryOutcome
    retry_at: dt.datetime | None = None


def deliver_alert(
    engine: Engine,
    alert_id: uuid.UUID,
    *,
    client: WebhookClient,
    retry: RetryPolicy,
    public_url: str,
    clock: Clock = _utcnow,
    jitter: Callable[[], float] = random.random,  # spreads retries; guards nothing
) -> Delivery:
    """Try once to deliver the alert, if it is pending and due; say when to try again.

    Two transactions around the POST, never one held open across it: the first leases the
    alert (see the module's docstring) and reads what to send; the second records the try
    and what follows: delivered on a 2xx; else due again after the backoff, or given up when
    that would be past its give-up time. Idempotency key: the alert id (a duplicate message
    finds it leased, delivered or given up, and sends nothing).
    """
    now = clock()
    lease_until = now + LEASE
    with write_transaction(engine) as conn:
        alert = repo.claim(conn, alert_id, now + EARLY, lease_until)
        if alert is None:
            return Delivery(DeliveryOutcome.NOT_DUE)
        target = _target(alert, now)
        if isinstance(target, str):
            repo.mark_failed(conn, alert.id, lease_until, target, None, counted=False)
    if isinstance(target, str):
        _finished(alert.id, DeliveryOutcome.GAVE_UP, alert.attempts, target)
        return Delivery(DeliveryOutcome.GAVE_UP)
    url, secret = target
    body = alert_document(alert, public_url)
    sent_at = clock()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature_header(secret, int(sent_at.timestamp()), body),
        ALERT_ID_HEADER: str(alert.id),
    }
    posted = client.post(url, body, headers)
    finished = clock()
    problem = posted.problem
    retry_at: dt.datetime | None = None
    with write_transaction(engine) as conn:
        repo.record_attempt(
            conn,
            alert.id,
            sent_at,
            url,
            posted.status_code,
            posted.error,
            posted.duration_ms,
        )
        if problem is None:
            repo.mark_delivered(conn, alert.id, finished)
        else:
            retry_at = finished + retry.delay(alert.attempts + 1, jitter())
            if retry_at >= alert.give_up_at:
                retry_at = None
            repo.mark_failed(conn, alert.id, lease_until, problem, retry_at)
    tries = alert.attempts + 1
    if problem is None:
        _finished(alert.id, DeliveryOutcome.DELIVERED, tries, None)
        return Delivery(DeliveryOutcome.DELIVERED)
    if retry_at is None:
        _finished(alert.id, DeliveryOutcome.GAVE_UP, tries, problem)
        return Delivery(DeliveryOutcome.GAVE_UP)
    _finished(alert.id, DeliveryOutcome.RETRYING, tries, problem)
    return Delivery(DeliveryOutcome.RETRYING, retry_at)


def _target(alert: ClaimedAlert, now: dt.datetime) -> tuple[str, str] | str:
    """Where to send the alert and the secret to sign it with; or why it is given up
    without a POST."""
    if alert.url is None or alert.secret is None:
        return "the clinic's webhook was removed"
    if now >= alert.give_up_at:  # its messages were lost until past its time
        return "not tried before its give-up time"
    return alert.url, alert.secret


def _finished(
    alert_id: uuid.UUID, outcome: DeliveryOutcome, tries: int, problem: str | None
) -> None:
    """Count and log the try: the alert id and what came of it, never the URL nor patient
    data."""
    metrics.ALERT_DELIVERIES.labels(outcome.value).inc()
    if outcome is DeliveryOutcome.DELIVERED:
        log.info("alert %s delivered (try %d)", alert_id, tries)
    elif outcome is DeliveryOutcome.RETRYING:
        log.warning("alert %s not delivered (try %d): %s; trying again", alert_id, tries, problem)
    else:
        log.error("alert %s given up after %d tries: %s", alert_id, tries, problem)


def alert_document(alert: ClaimedAlert, public_url: str) -> bytes:
    """The JSON an alert's webhook receives (compact, the same bytes on every try): enough to
    act on and to find the panel, and a link to it; the results themselves are behind it."""
    findings = alert.interpretation.get("findings", [])
    return orjson.dumps(
        {
            "id": str(alert.id),
            "type": ALERT_TYPE,
            "created_at": _iso(alert.created_at),
            "clinic": alert.clinic,
            "panel_id": str(alert.panel_id),
            "interpretation_id": str(alert.interpretation_id),
            "accession": alert.accession,
            "patient_id": alert.patient_id,
            "priority": alert.priority,
            "finding_codes": _unique(f["code"] for f in findings),
            "critical_finding_codes": _unique(f["code"] for f in findings if f.get("critical")),
            "link": f"{public_url.rstrip('/')}/review/panels/{alert.panel_id}",
        }
    )


def _unique(codes: Iterable[Any]) -> list[str]:
    return list(dict.fromkeys(str(code) for code in codes))


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def sweep_lost_alerts(
    engine: Engine,
    dispatcher: Dispatcher,
    older_than_seconds: int,
    now: dt.datetime,
    limit: int = 500,
) -> list[uuid.UUID]:
    """Publish again the pending alerts that were due more than ``older_than_seconds`` ago
    (their message was lost: the broker restarted, a publish failed, a worker died holding
    it). One transaction (stamping them due now), then the sends; those the broker refuses
    are due again at the next sweep after this one's ``older_than_seconds``. A duplicate is
    harmless: a delivery leases its alert."""
    cutoff = now - dt.timedelta(seconds=older_than_seconds)
    with write_transaction(engine) as conn:
        ids = repo.stamp_lost(conn, cutoff, now, limit)
    if ids:
        dispatcher.publish_alerts(ids)
    return ids


def list_alerts(session: Session, *, undelivered: bool = False, limit: int = 100) -> list[AlertRow]:
    """The newest alerts first, for an operator; only those not delivered if ``undelivered``."""
    return repo.newest_alerts(session, undelivered=undelivered, limit=limit)
