"""Clinician review: the queue of flagged and indeterminate panels, and sign-off.

A panel enters the queue (``pending``) when its newest interpretation is flagged or
indeterminate; a review against that interpretation takes it out (``reviewed``); a newer
interpretation that says something else (domain.significance: finding codes, grades,
severities, priority, red flags) puts it back (repositories/interpretations.show_newest).
Reviews are append-only.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from labinterp.domain import FindingStatus, Priority, significance
from labinterp.ids import new_id
from labinterp.models import AlertStatus, Decision, Interpretation, Review, ReviewStatus
from labinterp.repositories import panels as panels_repo
from labinterp.repositories import review as repo
from labinterp.repositories.review import ALL, QueueFilter
from labinterp.services import audit
from labinterp.services.audit import Actor
from labinterp.services.errors import Conflict, InvalidInput, NotFound

QUEUE_STATUSES = (ReviewStatus.PENDING.value, ReviewStatus.REVIEWED.value, ALL)
# decisions that set a critical value aside: a clinician must say why (API.md, issue 6)
NEEDS_NOTE_WHEN_CRITICAL = frozenset({Decision.FOLLOW_UP, Decision.DISMISSED})


@dataclass(frozen=True)
class AlertState:
    """The critical-value alert of a queue item's interpretation."""

    status: str  # AlertStatus
    attempts: int
    last_error: str | None

    @property
    def delivered(self) -> bool:
        return self.status == AlertStatus.DELIVERED


@dataclass(frozen=True)
class QueueItem:
    panel_id: uuid.UUID
    accession: str
    clinic: str
    patient_id: str
    collected_at: dt.datetime
    priority: Priority
    status: FindingStatus
    review_status: ReviewStatus
    reviewed_at: dt.datetime | None
    finding_codes: list[str]
    red_flag_codes: list[str]
    interpretation_id: uuid.UUID
    alert: AlertState | None

    @property
    def alert_undelivered(self) -> bool:
        """A critical panel whose alert did not reach the clinic (yet, or ever)."""
        return self.alert is not None and not self.alert.delivered


@dataclass(frozen=True)
class QueuePage:
    items: list[QueueItem]
    total: int
    counts: dict[str, int]  # pending per priority, and reviewed: for the filter links


def review_queue(
    session: Session,
    actor: Actor,
    *,
    status: str = ReviewStatus.PENDING,
    priorities: Collection[Priority] = (),
    flags: Collection[str] = (),
    clinic: str | None = None,
    undelivered_alerts: bool = False,
    page: int = 1,
    per_page: int = 20,
    with_counts: bool = False,
) -> QueuePage:
    """The clinician's queue, most pressing first. Read-only; the read of the page's panels
    is audited (one event naming them) and committed."""
    clinic_ids = _clinics_asked(actor, clinic)
    where = QueueFilter(
        clinic_ids=clinic_ids,
        status=status,
        priorities=tuple(priorities),
        flags=tuple(flags),
        undelivered_alerts=undelivered_alerts,
    )
    rows, total = repo.queue_page(session, where, (page - 1) * per_page, per_page)
    items = [_item(row) for row in rows]
    counts = repo.queue_counts(session, clinic_ids) if with_counts else {}
    audit.record(
        session,
        actor,
        "review_queue.read",
        detail={"panel_ids": [str(i.panel_id) for i in items], "status": status},
    )
    session.commit()
    return QueuePage(items, total, counts)


def _clinics_asked(actor: Actor, clinic: str | None) -> frozenset[uuid.UUID]:
    mine = actor.clinic_ids or frozenset()
    if clinic is None:
        return frozenset(mine)
    chosen = frozenset(cid for cid in mine if actor.clinic_names.get(cid) == clinic)
    if not chosen:
        yours = ", ".join(sorted(actor.clinic_names[c] for c in mine if c in actor.clinic_names))
        raise InvalidInput({"clinic": [f"{clinic!r} is not one of your clinics ({yours})"]})
    return chosen


def _item(row: Any) -> QueueItem:
    return QueueItem(
        panel_id=row.panel_id,
        accession=row.accession,
        clinic=row.clinic,
        patient_id=row.patient_id,
        collected_at=row.collected_at,  # aware: models.base.UtcDateTime
        priority=Priority(row.priority),
        status=FindingStatus(row.status),
        review_status=ReviewStatus(row.review_status),
        reviewed_at=row.reviewed_at,
        finding_codes=list(row.finding_codes or []),
        red_flag_codes=list(row.red_flag_codes or []),
        interpretation_id=row.interpretation_id,
        alert=None
        if row.alert_status is None
        else AlertState(row.alert_status, row.alert_attempts, row.alert_error),
    )


@dataclass(frozen=True)
class ReviewView:
    id: uuid.UUID
    panel_id: uuid.UUID
    interpretation_id: uuid.UUID
    reviewer: str
    decision: Decision
    note: str | None
    created_at: dt.datetime


def review_view(row: Review) -> ReviewView:
    return ReviewView(
        id=row.id,
        panel_id=row.panel_id,
        interpretation_id=row.interpretation_id,
        reviewer=row.reviewer,
        decision=Decision(row.decision),
        note=row.note,
        created_at=row.created_at,
    )


def submit_review(
    session: Session,
    actor: Actor,
    panel_id: uuid.UUID,
    decision: Decision,
    note: str | None,
    *,
    seen_interpretation: uuid.UUID | None = None,
    now: dt.datetime | None = None,
) -> ReviewView:
    """Sign a panel off against its newest interpretation. One transaction: the review, the
    panel's review state and the audit event.

    404 for a panel the clinician cannot see; 409 when it has no interpretation yet, or when
    ``seen_interpretation`` (what the clinician read) is no longer the newest: a review is
    always of what was actually read. A ``follow_up`` or ``dismissed`` decision on a critical
    panel needs a note (422 naming ``note``).
    """
    now = now or dt.datetime.now(dt.UTC)
    panel = panels_repo.get_panel(session, panel_id, actor.clinic_ids)
    if panel is None:
        raise NotFound("panel")
    if panel.interpretation_id is None:
        raise Conflict("this panel has no interpretation yet: review it once it is interpreted")
    current = session.get(Interpretation, panel.interpretation_id)
    assert current is not None  # noqa: S101 - a foreign key in all but name, set with it
    if seen_interpretation is not None and seen_interpretation != current.id:
        raise _stale(current)
    note = (note or "").strip() or None
    if (
        current.priority == Priority.CRITICAL
        and decision in NEEDS_NOTE_WHEN_CRITICAL
        and note is None
    ):
        raise InvalidInput(
            {
                "note": [
                    f"a {decision.value} decision on a panel with a critical value needs a "
                    "note saying why (and who was told)"
                ]
            }
        )
    signature = significance(current.body)
    in_queue = FindingStatus(current.status).needs_review
    if not repo.mark_reviewed(session, panel.id, current.id, signature, in_queue, now):
        session.rollback()
        newer = panels_repo.get_panel(session, panel_id, actor.clinic_ids)
        fresh = None if newer is None else session.get(Interpretation, newer.interpretation_id)
        raise _stale(fresh or current)
    review = Review(
        id=new_id(),
        panel_id=panel.id,
        interpretation_id=current.id,
        reviewer=actor.name,
        user_id=actor.user_id,
        decision=decision.value,
        note=note,
        signature=signature,
        created_at=now,
    )
    session.add(review)
    audit.record(
        session,
        actor,
        "review.create",
        clinic_id=panel.clinic_id,
        panel_id=panel.id,
        detail={
            "review_id": str(review.id),
            "decision": decision.value,
            "interpretation_id": str(current.id),
            "priority": current.priority,
        },
        at=now,
    )
    session.commit()
    return review_view(review)


def _stale(newest: Interpretation) -> Conflict:
    when = newest.created_at.isoformat()
    return Conflict(
        "the panel was re-interpreted since you read it "
        f"(ruleset {newest.ruleset}, at {when}): read it again before signing it off",
        {"interpretation_id": str(newest.id), "interpreted_at": when},
    )


def panel_reviews(session: Session, actor: Actor, panel_id: uuid.UUID) -> list[ReviewView]:
    """Every review of a panel the caller can see, newest first (audited, committed)."""
    panel = panels_repo.get_panel(session, panel_id, actor.clinic_ids)
    if panel is None:
        raise NotFound("panel")
    reviews = repo.reviews_of(session, [panel.id])[panel.id]
    audit.record(session, actor, "reviews.read", clinic_id=panel.clinic_id, panel_id=panel.id)
    session.commit()
    return [review_view(r) for r in reviews]


def reviews_by_panel(
    session: Session, panel_ids: list[uuid.UUID]
) -> Mapping[uuid.UUID, list[ReviewView]]:
    """Reviews of panels already read (and audited) by the caller, newest first."""
    return {
        pid: [review_view(r) for r in rows]
        for pid, rows in repo.reviews_of(session, panel_ids).items()
    }
