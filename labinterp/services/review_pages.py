"""What the clinician's review pages read, beyond the queue (services/review.py): one panel
with everything a reviewer reads before signing it off, and where to go after a review.

Built on the same services as the API (reading.read_panel, reading.patient_trend,
review.reviews_by_panel), so the pages show what the API shows, with the same clinic rules.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from labinterp.domain import FindingStatus, Priority, Ruleset
from labinterp.models import ReviewStatus
from labinterp.repositories import panels as panels_repo
from labinterp.repositories import review as review_repo
from labinterp.repositories.review import QueueFilter
from labinterp.services import audit, reading
from labinterp.services.audit import Actor
from labinterp.services.errors import InvalidInput, NotFound
from labinterp.services.review import ReviewView

# the newest results of an analyte drawn in its trend: a chart, not an archive
TREND_POINTS = 60
_ALL_OF_THEM = 100_000  # patient_trend pages; one page holds a patient's every result


@dataclass(frozen=True)
class InterpretationEntry:
    """One interpretation of the panel, for the page's history."""

    id: uuid.UUID
    revision: int
    ruleset: str
    created_at: dt.datetime
    status: FindingStatus
    priority: Priority


@dataclass(frozen=True)
class AnalyteTrend:
    analyte: str
    points: list[reading.TrendPoint]  # oldest first (the newest TREND_POINTS)
    total: int  # how many results the patient has for it


@dataclass(frozen=True)
class PanelPage:
    panel: reading.PanelView
    interpretations: list[InterpretationEntry]  # newest first
    reviews: list[ReviewView]  # newest first
    trends: list[AnalyteTrend]  # one per analyte of the panel, in the panel's order
    review_status: ReviewStatus | None  # None: normal, never in the queue


def read_panel_page(
    session: Session, actor: Actor, rulesets: Mapping[str, Ruleset], panel_id: uuid.UUID
) -> PanelPage:
    """The panel, its interpretations, its reviews, and the patient's trend of each of its
    analytes. One transaction with one audit event ("panel.read") naming every panel whose
    values the page shows. NotFound for a panel of another clinic, as for none."""
    panel = panels_repo.get_panel(session, panel_id, actor.clinic_ids)
    if panel is None:
        raise NotFound("panel")
    document = reading.read_panel(session, actor, rulesets, panel.id, audited=False)
    analytes = [r.analyte for r in document.results]  # in the panel's order
    trends = []
    for analyte in dict.fromkeys(analytes):
        try:
            points, total = reading.patient_trend(
                session,
                actor,
                rulesets,
                panel.patient.external_id,
                analyte,
                1,
                _ALL_OF_THEM,
                clinic_name=panel.clinic.name,
                audited=False,  # one event for the whole page, below
            )
        except (NotFound, InvalidInput):  # nothing of it stored yet
            continue
        trends.append(AnalyteTrend(analyte, list(points[-TREND_POINTS:]), total))
    shown = {str(panel.id)} | {str(point.panel_id) for trend in trends for point in trend.points}
    entries = [
        InterpretationEntry(
            id=row.id,
            revision=row.revision,
            ruleset=row.ruleset,
            created_at=row.created_at,  # aware: models.base.UtcDateTime
            status=FindingStatus(row.status),
            priority=Priority(row.priority),
        )
        for row in panels_repo.interpretations_of(session, panel.id)
    ]
    audit.record(
        session,
        actor,
        "panel.read",
        clinic_id=panel.clinic_id,
        panel_id=panel.id,
        detail={
            "via": "review page",
            "revision": panel.current_revision,
            "panel_ids": sorted(shown),
            "trends": list(dict.fromkeys(analytes)),
        },
    )
    status = None if panel.review_status is None else ReviewStatus(panel.review_status)
    session.commit()
    return PanelPage(document, entries, document.reviews, trends, status)


@dataclass(frozen=True)
class AfterReview:
    accession: str  # of the panel just reviewed
    next_panel_id: uuid.UUID | None  # the most pressing panel still pending, if any


def after_review(session: Session, actor: Actor, reviewed: uuid.UUID) -> AfterReview:
    """Where a clinician goes once a review is saved: the most pressing pending panel of
    their queue other than the one reviewed. Reads an accession and an id only (the review
    itself was audited; the page it leads to audits its own read); read-only."""
    panel = panels_repo.get_panel(session, reviewed, actor.clinic_ids)
    accession = panel.accession if panel is not None else ""
    rows, _ = review_repo.queue_page(
        session, QueueFilter(clinic_ids=actor.clinic_ids or frozenset()), 0, 2
    )
    session.rollback()  # nothing written: end the read's transaction
    following = next((row.panel_id for row in rows if row.panel_id != reviewed), None)
    return AfterReview(accession, following)
