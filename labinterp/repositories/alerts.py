"""Queries for critical-value alerts: make them with the interpretations they announce, claim
one for delivery, record what each try came to, find the ones whose message was lost.

Never commits: the calling service does. Works on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from labinterp.ids import new_id
from labinterp.models import (
    Alert,
    AlertAttempt,
    AlertStatus,
    Clinic,
    ClinicWebhook,
    Interpretation,
    Panel,
    Patient,
)
from labinterp.repositories.dialects import insert

_ALERTS = cast(Table, Alert.__table__)
_ATTEMPTS = cast(Table, AlertAttempt.__table__)
_PANELS = cast(Table, Panel.__table__)
_WEBHOOKS = cast(Table, ClinicWebhook.__table__)
_INTERPRETATIONS = cast(Table, Interpretation.__table__)
_PATIENTS = cast(Table, Patient.__table__)
_CLINICS = cast(Table, Clinic.__table__)

_PENDING = AlertStatus.PENDING.value

# the panels still showing these interpretations, of a clinic with a webhook (by primary key:
# an interpretation of a revision corrected meanwhile is no longer its panel's, and announces
# nothing)
_TO_ALERT = (
    select(_PANELS.c.interpretation_id, _PANELS.c.id, _PANELS.c.clinic_id)
    .join(_WEBHOOKS, _WEBHOOKS.c.clinic_id == _PANELS.c.clinic_id)
    .where(
        _PANELS.c.id.in_(bindparam("panel_ids", expanding=True)),
        _PANELS.c.interpretation_id.in_(bindparam("ids", expanding=True)),
    )
)
# taken for one delivery: the lease (a later next_attempt_at) keeps a duplicate message, or a
# second worker, from sending it too until this delivery has recorded what came of it
_CLAIM = (
    update(_ALERTS)
    .where(
        _ALERTS.c.id == bindparam("alert_id"),
        _ALERTS.c.status == _PENDING,
        or_(_ALERTS.c.next_attempt_at.is_(None), _ALERTS.c.next_attempt_at <= bindparam("due_by")),
    )
    .values(next_attempt_at=bindparam("lease_until"))
    .returning(_ALERTS.c.id)
)
_CONTENT = (
    select(
        _ALERTS.c.id,
        _ALERTS.c.interpretation_id,
        _ALERTS.c.panel_id,
        _ALERTS.c.attempts,
        _ALERTS.c.created_at,
        _ALERTS.c.give_up_at,
        _PANELS.c.accession,
        _PATIENTS.c.external_id.label("patient_id"),
        _CLINICS.c.name.label("clinic"),
        _INTERPRETATIONS.c.priority,
        _INTERPRETATIONS.c.body.label("interpretation"),
        _WEBHOOKS.c.url,
        _WEBHOOKS.c.secret,
    )
    .join(_PANELS, _PANELS.c.id == _ALERTS.c.panel_id)
    .join(_PATIENTS, _PATIENTS.c.id == _PANELS.c.patient_id)
    .join(_CLINICS, _CLINICS.c.id == _ALERTS.c.clinic_id)
    .join(_INTERPRETATIONS, _INTERPRETATIONS.c.id == _ALERTS.c.interpretation_id)
    .outerjoin(_WEBHOOKS, _WEBHOOKS.c.clinic_id == _ALERTS.c.clinic_id)
    .where(_ALERTS.c.id == bindparam("alert_id"))
)


@dataclass(frozen=True)
class ClaimedAlert:
    """An alert taken for one delivery, with what it says and where it goes."""

    id: uuid.UUID
    interpretation_id: uuid.UUID
    panel_id: uuid.UUID
    attempts: int  # tries recorded before this one
    created_at: dt.datetime
    give_up_at: dt.datetime
    accession: str
    patient_id: str  # the clinic's own patient id
    clinic: str
    priority: str
    interpretation: dict[str, Any]
    url: str | None  # None: the clinic's webhook was removed since
    secret: str | None


def create_alerts(
    conn: Connection,
    interpretations: Sequence[tuple[uuid.UUID, uuid.UUID]],
    now: dt.datetime,
    give_up_at: dt.datetime,
) -> list[uuid.UUID]:
    """An alert for each (interpretation id, panel id) whose interpretation is its panel's
    newest, of a clinic with a webhook; never a second one for an interpretation (unique,
    skipped on conflict). Two round trips for any number; returns the ids of the alerts made."""
    if not interpretations:
        return []
    rows = conn.execute(
        _TO_ALERT,
        {"ids": [i for i, _ in interpretations], "panel_ids": [p for _, p in interpretations]},
    ).all()
    if not rows:
        return []
    return list(
        conn.scalars(
            insert(conn, _ALERTS)
            .on_conflict_do_nothing(index_elements=["interpretation_id"])
            .returning(_ALERTS.c.id, sort_by_parameter_order=True),
            [
                {
                    "id": new_id(),
                    "interpretation_id": interpretation_id,
                    "panel_id": panel_id,
                    "clinic_id": clinic_id,
                    "status": _PENDING,
                    "attempts": 0,
                    "created_at": now,
                    "next_attempt_at": now,  # due at once: its message follows the commit
                    "give_up_at": give_up_at,
                }
                for interpretation_id, panel_id, clinic_id in rows
            ],
        )
    )


def claim(
    conn: Connection,
    alert_id: uuid.UUID,
    due_by: dt.datetime,
    lease_until: dt.datetime,
) -> ClaimedAlert | None:
    """Take the alert for one delivery if it is pending and due by ``due_by`` (its row locked
    until the caller's transaction ends: a concurrent claim waits, then finds it leased).
    None: delivered, given up, leased to another delivery, or not due yet."""
    leased = conn.execute(
        _CLAIM, {"alert_id": alert_id, "due_by": due_by, "lease_until": lease_until}
    ).first()
    if leased is None:
        return None
    row = conn.execute(_CONTENT, {"alert_id": alert_id}).one()
    return ClaimedAlert(**row._asdict())


def record_attempt(
    conn: Connection,
    alert_id: uuid.UUID,
    at: dt.datetime,
    url: str,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
) -> None:
    conn.execute(
        _ATTEMPTS.insert(),
        {
            "alert_id": alert_id,
            "at": at,
            "url": url,
            "status_code": status_code,
            "error": error,
            "duration_ms": duration_ms,
        },
    )


def mark_delivered(conn: Connection, alert_id: uuid.UUID, now: dt.datetime) -> None:
    """Delivered, whatever else was decided meanwhile: a 2xx is the last word."""
    conn.execute(
        update(_ALERTS)
        .where(_ALERTS.c.id == alert_id, _ALERTS.c.status != AlertStatus.DELIVERED.value)
        .values(
            status=AlertStatus.DELIVERED.value,
            attempts=_ALERTS.c.attempts + 1,
            delivered_at=now,
            next_attempt_at=None,
            last_error=None,
        )
    )


def mark_failed(
    conn: Connection,
    alert_id: uuid.UUID,
    lease_until: dt.datetime,
    error: str,
    next_attempt_at: dt.datetime | None,
    *,
    counted: bool = True,
) -> bool:
    """A try that did not deliver: due again at ``next_attempt_at``, or given up (None).
    Only while this delivery still holds its lease (a delivery slower than its lease has
    been overtaken by another, whose outcome stands). ``counted``: a POST was made."""
    values: dict[str, Any] = {"last_error": error[:200], "next_attempt_at": next_attempt_at}
    if counted:
        values["attempts"] = _ALERTS.c.attempts + 1
    if next_attempt_at is None:
        values["status"] = AlertStatus.GAVE_UP.value
    return bool(
        conn.execute(
            update(_ALERTS)
            .where(
                _ALERTS.c.id == alert_id,
                _ALERTS.c.status == _PENDING,
                _ALERTS.c.next_attempt_at == lease_until,
            )
            .values(**values)
        ).rowcount
    )


def stamp_lost(
    conn: Connection, cutoff: dt.datetime, now: dt.datetime, limit: int
) -> list[uuid.UUID]:
    """Pending alerts due before ``cutoff`` (their message is lost: it would have been taken
    long since), made due ``now``; returns their ids. The stamp keeps the next sweep from
    sending them again while their new message waits."""
    lost = (
        select(_ALERTS.c.id)
        .where(_ALERTS.c.status == _PENDING, _ALERTS.c.next_attempt_at < cutoff)
        .order_by(_ALERTS.c.next_attempt_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        lost = lost.with_for_update(skip_locked=True)  # a row being claimed is not lost
    return list(
        conn.scalars(
            update(_ALERTS)
            .where(_ALERTS.c.id.in_(lost.scalar_subquery()))
            .values(next_attempt_at=now)
            .returning(_ALERTS.c.id)
        )
    )


@dataclass(frozen=True)
class AlertRow:
    """An alert as an operator lists it."""

    id: uuid.UUID
    clinic: str
    panel_id: uuid.UUID
    accession: str
    status: str
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    last_error: str | None


def newest_alerts(session: Session, *, undelivered: bool, limit: int) -> list[AlertRow]:
    """The newest alerts first (only those not delivered, if ``undelivered``); one query."""
    stmt = (
        select(
            _ALERTS.c.id,
            _CLINICS.c.name.label("clinic"),
            _ALERTS.c.panel_id,
            _PANELS.c.accession,
            _ALERTS.c.status,
            _ALERTS.c.attempts,
            _ALERTS.c.created_at,
            _ALERTS.c.next_attempt_at,
            _ALERTS.c.delivered_at,
            _ALERTS.c.last_error,
        )
        .join(_CLINICS, _CLINICS.c.id == _ALERTS.c.clinic_id)
        .join(_PANELS, _PANELS.c.id == _ALERTS.c.panel_id)
        .order_by(_ALERTS.c.created_at.desc())
        .limit(limit)
    )
    if undelivered:
        stmt = stmt.where(_ALERTS.c.status != AlertStatus.DELIVERED.value)
    return [AlertRow(**row._asdict()) for row in session.execute(stmt)]
