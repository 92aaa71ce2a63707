"""Queries of the review queue and of reviews. Never commits.

The queue is one query on ``panels`` alone for its order and filters: each panel carries its
newest interpretation's priority rank, finding status, codes and review status (set with the
interpretation, repositories/interpretations.py), and two partial indexes on
(clinic, review status, rank, collection time) and (clinic, rank, collection time) give the
rows in order. Clinic and patient names, and the alert of a critical interpretation, are
joined by primary key for the page's rows only.

An index range is in order within one clinic only: with ``clinic_id IN (…)`` PostgreSQL
sorted every pending row of a clinician's clinics for each page (60-100 ms with 100,000
panels in one of two clinics, bench/review_queue.py). So each clinic's first
``offset + limit`` rows are read from its own range, and only those are merged and cut.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Subquery, and_, exists, func, select, union_all, update
from sqlalchemy.orm import Session, aliased

from labinterp.domain import Priority
from labinterp.models import (
    Alert,
    AlertStatus,
    Clinic,
    InterpretationCode,
    Panel,
    Patient,
    Review,
    ReviewStatus,
)

ALL = "all"  # ?status=all: pending and reviewed


@dataclass(frozen=True)
class QueueFilter:
    clinic_ids: Collection[uuid.UUID]  # the clinician's, or the one asked for among them
    status: str = ReviewStatus.PENDING  # a ReviewStatus, or ALL
    priorities: tuple[Priority, ...] = ()  # any of these
    flags: tuple[str, ...] = ()  # any of these finding, red-flag or result codes
    undelivered_alerts: bool = False  # only panels whose critical-value alert has not arrived


_ORDER = (Panel.priority_rank, Panel.collected_at, Panel.id)  # most pressing first


def _where(where: QueueFilter) -> list[ColumnElement[bool]]:
    return [Panel.clinic_id.in_(list(where.clinic_ids)), *_filters(where)]


def _filters(where: QueueFilter) -> list[ColumnElement[bool]]:
    """Every condition but the clinic's."""
    clauses: list[ColumnElement[bool]] = []
    if where.status == ALL:
        clauses.append(Panel.review_status.is_not(None))
    else:
        clauses.append(Panel.review_status == where.status)
    if where.priorities:
        clauses.append(Panel.priority_rank.in_([p.rank for p in where.priorities]))
    if where.flags:
        clauses.append(
            exists().where(
                InterpretationCode.interpretation_id == Panel.interpretation_id,
                InterpretationCode.code.in_(where.flags),
            )
        )
    if where.undelivered_alerts:
        alert = aliased(Alert)  # the page's query joins Alert itself
        clauses.append(
            exists()
            .where(
                # by panel too: the few alerts not delivered lead to their panels by primary
                # key (panels has no index on interpretation_id: without it, every queued row
                # of the clinic was hashed against them)
                alert.panel_id == Panel.id,
                alert.interpretation_id == Panel.interpretation_id,
                alert.status != AlertStatus.DELIVERED.value,
            )
            .correlate(Panel)
        )
    return clauses


def queue_page(
    session: Session, where: QueueFilter, offset: int, limit: int
) -> tuple[list[Any], int]:
    """One page of the queue, most pressing first (critical, urgent, routine; then the
    oldest collection), and the total. Two statements: the page, and its count."""
    if not where.clinic_ids:
        return [], 0
    page = _page_ids(where, offset, limit)
    rows = session.execute(
        select(
            Panel.id.label("panel_id"),
            Panel.accession,
            Clinic.name.label("clinic"),
            Patient.external_id.label("patient_id"),
            Panel.collected_at,
            Panel.priority,
            Panel.finding_status.label("status"),
            Panel.review_status,
            Panel.reviewed_at,
            Panel.finding_codes,
            Panel.red_flag_codes,
            Panel.interpretation_id,
            Alert.status.label("alert_status"),
            Alert.attempts.label("alert_attempts"),
            Alert.last_error.label("alert_error"),
        )
        .select_from(page)
        .join(Panel, Panel.id == page.c.id)
        .join(Clinic, Clinic.id == Panel.clinic_id)
        .join(Patient, Patient.id == Panel.patient_id)
        .outerjoin(Alert, Alert.interpretation_id == Panel.interpretation_id)
        .order_by(*_ORDER)
    ).all()
    total = session.scalar(select(func.count()).select_from(Panel).where(*_where(where))) or 0
    return list(rows), int(total)


def _page_ids(where: QueueFilter, offset: int, limit: int) -> Subquery:
    """The page's panel ids, chosen on ``panels`` alone (the rows an OFFSET skips are never
    joined): each clinic's first ``offset + limit`` rows in index order, merged and cut."""
    filters = _filters(where)
    firsts = [
        select(Panel.id, Panel.priority_rank, Panel.collected_at)
        .where(Panel.clinic_id == clinic_id, *filters)
        .order_by(*_ORDER)
        .limit(offset + limit)
        .subquery()
        for clinic_id in sorted(where.clinic_ids)
    ]
    merged = (
        firsts[0]
        if len(firsts) == 1
        else union_all(*(select(first) for first in firsts)).subquery()
    )
    return (
        select(merged.c.id)
        .order_by(merged.c.priority_rank, merged.c.collected_at, merged.c.id)
        .offset(offset)
        .limit(limit)
        .subquery("page")
    )


def queue_counts(session: Session, clinic_ids: Collection[uuid.UUID]) -> dict[str, int]:
    """How many panels are pending at each priority, and reviewed: the filter links' counts.
    Grouped by the rank, which the queue's index holds (an index-only scan; the priority
    word is not in it, and grouping by it read every queued row of the table)."""
    rows = session.execute(
        select(Panel.review_status, Panel.priority_rank, func.count())
        .where(Panel.clinic_id.in_(list(clinic_ids)), Panel.review_status.is_not(None))
        .group_by(Panel.review_status, Panel.priority_rank)
    )
    counts: dict[str, int] = {}
    for status, rank, count in rows:
        key = str(_BY_RANK[rank]) if status == ReviewStatus.PENDING else str(status)
        counts[key] = counts.get(key, 0) + int(count)
    return counts


_BY_RANK: dict[int | None, Priority] = {priority.rank: priority for priority in Priority}


def mark_reviewed(
    session: Session,
    panel_id: uuid.UUID,
    interpretation_id: uuid.UUID,
    signature: str,
    in_queue: bool,
    now: dt.datetime,
) -> bool:
    """Record that the panel was reviewed against this interpretation, if it is still the
    panel's newest (checked by the database at the update: a worker that stored a newer one
    since wins, and the caller answers 409). True when it was."""
    values: dict[str, Any] = {"reviewed_signature": signature, "reviewed_at": now}
    if in_queue:
        values["review_status"] = ReviewStatus.REVIEWED.value
    result = session.execute(
        update(Panel)
        .where(and_(Panel.id == panel_id, Panel.interpretation_id == interpretation_id))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def reviews_of(session: Session, panel_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Review]]:
    """Each panel's reviews, newest first: one round trip for any number of panels."""
    found: dict[uuid.UUID, list[Review]] = {pid: [] for pid in panel_ids}
    if not panel_ids:
        return found
    for review in session.scalars(
        select(Review)
        .where(Review.panel_id.in_(list(panel_ids)))
        .order_by(Review.created_at.desc(), Review.id)
    ):
        found[review.panel_id].append(review)
    return found
