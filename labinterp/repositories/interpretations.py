"""Set-based queries for interpreting stored panels: claim a batch, read what the engine
needs in two round trips, write the interpretations of a whole batch at once.

Never commits: the calling service does. Works on SQLite (3.35+: RETURNING, row values) and
PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, func, select, tuple_, update
from sqlalchemy.orm import Session

from labinterp.domain import Context, RawPanel, RawRange, RawResult, Twitching
from labinterp.models import (
    Interpretation,
    InterpretationCode,
    Panel,
    PanelContext,
    PanelRevision,
    PanelStatus,
    Result,
)
from labinterp.repositories.dialects import insert


@dataclass(frozen=True)
class Claim:
    """A queued panel a worker has taken up (its attempts already counted)."""

    panel_id: uuid.UUID
    clinic_id: uuid.UUID
    revision: int
    attempts: int
    accepted_at: dt.datetime  # when the revision was accepted (the panel's updated_at)


@dataclass(frozen=True)
class StoredRevision:
    """A revision as the engine needs it, read back from what was stored."""

    panel_id: uuid.UUID
    revision_id: uuid.UUID
    revision: int
    ruleset: str
    created_at: dt.datetime
    raw: RawPanel
    interpreted: bool  # an interpretation under its ruleset exists already


def claim_queued(session: Session, panel_ids: Sequence[uuid.UUID]) -> list[Claim]:
    """Count an attempt on each panel that is still `queued`, and return them. Panels already
    interpreted or failed are left alone (a duplicate message is a no-op)."""
    if not panel_ids:
        return []
    rows = session.execute(
        update(Panel)
        .where(Panel.id.in_(list(panel_ids)), Panel.status == PanelStatus.QUEUED)
        .values(attempts=Panel.attempts + 1)
        .returning(
            Panel.id, Panel.clinic_id, Panel.current_revision, Panel.attempts, Panel.updated_at
        )
        .execution_options(synchronize_session=False)
    )
    return [Claim(*row) for row in rows]


def stored_revisions(
    session: Session, wanted: Iterable[tuple[uuid.UUID, int]]
) -> list[StoredRevision]:
    """The revisions (panel id, revision number) with their results and context, and whether
    each is interpreted under its own ruleset already: two round trips for any number."""
    keys = list(wanted)
    if not keys:
        return []
    done = exists().where(
        Interpretation.revision_id == PanelRevision.id,
        Interpretation.ruleset == PanelRevision.ruleset,
    )
    revisions = session.execute(
        select(
            PanelRevision.id,
            PanelRevision.panel_id,
            PanelRevision.revision,
            PanelRevision.ruleset,
            PanelRevision.created_at,
            PanelRevision.collected_at,
            PanelRevision.collected_utc_offset,
            PanelRevision.sex,
            PanelRevision.birth_date,
            PanelRevision.age_years,
            PanelRevision.hemolyzed,
            PanelRevision.specimen_type,
            PanelContext.twitching,
            PanelContext.symptoms,
            PanelContext.factors,
            PanelContext.medications,
            PanelContext.notes,
            done.label("interpreted"),
        )
        .outerjoin(PanelContext, PanelContext.revision_id == PanelRevision.id)
        .where(tuple_(PanelRevision.panel_id, PanelRevision.revision).in_(keys))
    ).all()
    results: dict[uuid.UUID, list[RawResult]] = {row.id: [] for row in revisions}
    for row in session.execute(
        select(
            Result.revision_id,
            Result.analyte,
            Result.loinc,
            Result.reported_value,
            Result.reported_unit,
            Result.lab_low,
            Result.lab_high,
            Result.lab_range_text,
        )
        .where(Result.revision_id.in_(list(results)))
        .order_by(Result.revision_id, Result.position)
    ):
        results[row.revision_id].append(_raw_result(row))
    return [
        StoredRevision(
            panel_id=row.panel_id,
            revision_id=row.id,
            revision=row.revision,
            ruleset=row.ruleset,
            created_at=row.created_at,
            raw=_raw_panel(row, results[row.id]),
            interpreted=bool(row.interpreted),
        )
        for row in revisions
    ]


def _raw_result(row: Any) -> RawResult:
    lab = None
    if row.lab_low is not None or row.lab_high is not None or row.lab_range_text is not None:
        lab = RawRange(
            low=None if row.lab_low is None else Decimal(row.lab_low),
            high=None if row.lab_high is None else Decimal(row.lab_high),
            text=row.lab_range_text,
        )
    return RawResult(
        analyte=row.analyte,
        loinc=row.loinc,
        value=Decimal(row.reported_value),
        unit=row.reported_unit,
        reference_range=lab,
    )


def _raw_panel(row: Any, results: list[RawResult]) -> RawPanel:
    """The panel as the clinic sent it: its results verbatim, its collection time with the
    offset it was sent with (age bands turn over on the local calendar date)."""
    sent = dt.timezone(dt.timedelta(minutes=row.collected_utc_offset))
    twitching = row.twitching
    return RawPanel(
        collected_at=row.collected_at.astimezone(sent),
        sex=row.sex,
        birth_date=row.birth_date,
        age_years=row.age_years,
        hemolyzed=row.hemolyzed,
        specimen_type=row.specimen_type,
        results=tuple(results),
        context=Context(
            twitching=None
            if twitching is None
            else Twitching(
                sites=tuple(twitching.get("sites") or ()),
                duration_days=twitching.get("duration_days"),
                frequency=twitching.get("frequency"),
            ),
            symptoms=tuple(row.symptoms or ()),
            factors=tuple(row.factors or ()),
            medications=tuple(row.medications or ()),
            notes=row.notes,
        ),
    )


@dataclass(frozen=True)
class NewInterpretation:
    panel_id: uuid.UUID
    revision_id: uuid.UUID
    revision: int
    ruleset: str
    body: dict[str, Any]


def store_interpretations(
    session: Session, rows: Sequence[NewInterpretation], now: dt.datetime
) -> list[NewInterpretation]:
    """Insert the interpretations and their filter codes; one of a (revision, ruleset) stored
    meanwhile by another worker is skipped. Returns those stored by this call."""
    if not rows:
        return []
    ids = {row.revision_id: uuid.uuid4() for row in rows}
    stored = set(
        session.scalars(
            insert(session, Interpretation)
            .values(
                [
                    {
                        "id": ids[row.revision_id],
                        "panel_id": row.panel_id,
                        "revision_id": row.revision_id,
                        "revision": row.revision,
                        "ruleset": row.ruleset,
                        "created_at": now,
                        "status": str(row.body["status"]),
                        "priority": str(row.body["priority"]),
                        "body": row.body,
                    }
                    for row in rows
                ]
            )
            .on_conflict_do_nothing(index_elements=["revision_id", "ruleset"])
            .returning(Interpretation.revision_id)
        )
    )
    mine = [row for row in rows if row.revision_id in stored]
    codes = [
        {"interpretation_id": ids[row.revision_id], "code": code, "kind": kind}
        for row in mine
        for code, kind in sorted(filter_codes(row.body))
    ]
    if codes:
        session.execute(insert(session, InterpretationCode).values(codes))
    return mine


def filter_codes(body: dict[str, Any]) -> set[tuple[str, str]]:
    """Codes a panel can be filtered by: finding codes, red-flag codes, result flags (L, HH…)."""
    codes: set[tuple[str, str]] = set()
    for finding in body.get("findings", []):
        codes.add((finding["code"], "finding"))
    for flag in body.get("red_flags", []):
        codes.add((flag["code"], "red_flag"))
    for result in body.get("results", []):
        if result.get("interpretation") not in (None, "N"):
            codes.add((result["interpretation"], "result"))
    return codes


def settle(
    session: Session,
    revisions: Iterable[tuple[uuid.UUID, int]],
    status: PanelStatus,
    now: dt.datetime,
    failure_code: str | None = None,
    failure: str | None = None,
) -> list[uuid.UUID]:
    """Set the processing status of each panel whose current revision is still the one given
    (checked by the database at the moment of the update, not on a copy read earlier: a
    correction committed meanwhile stays `queued` for its own task). Returns the panels set."""
    keys = list(revisions)
    if not keys:
        return []
    return list(
        session.scalars(
            update(Panel)
            .where(tuple_(Panel.id, Panel.current_revision).in_(keys))
            .values(status=status, failure_code=failure_code, failure=failure, updated_at=now)
            .returning(Panel.id)
            .execution_options(synchronize_session=False)
        )
    )


def queued_ages(session: Session) -> tuple[int, dt.datetime | None]:
    """How many panels are `queued`, and since when the oldest one is (index range scans on
    (status, updated_at), never the whole table)."""
    count, oldest = session.execute(
        select(func.count(), func.min(Panel.updated_at)).where(Panel.status == PanelStatus.QUEUED)
    ).one()
    return int(count), oldest
