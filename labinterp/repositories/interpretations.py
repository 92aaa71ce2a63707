"""Set-based queries for interpreting stored panels: claim a batch, read what the engine
needs in two round trips, write the interpretations of a whole batch at once.

Never commits: the calling service does. Works on SQLite (3.35+: RETURNING, row values) and
PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Connection,
    Table,
    and_,
    bindparam,
    case,
    func,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.orm import Session

from labinterp.domain import (
    Context,
    FindingStatus,
    Priority,
    RawPanel,
    RawRange,
    RawResult,
    Twitching,
    significance,
)
from labinterp.ids import new_id
from labinterp.models import (
    Interpretation,
    InterpretationCode,
    Panel,
    PanelContext,
    PanelRevision,
    PanelStatus,
    Result,
    ReviewStatus,
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
    # the sender's own flag of each result, by position (FHIR, HL7 v2, or the JSON API's
    # sender_flag): shown beside ours (domain.disagreements)
    sender_flags: dict[int, str | None] = field(default_factory=dict)


_PANELS = cast(Table, Panel.__table__)
_REVISIONS = cast(Table, PanelRevision.__table__)
_CONTEXTS = cast(Table, PanelContext.__table__)
_RESULTS = cast(Table, Result.__table__)
_INTERPRETATIONS = cast(Table, Interpretation.__table__)
_CODES = cast(Table, InterpretationCode.__table__)
# the worker's rows: (revision, ruleset) is unique among them (re-processing jobs write more)
_WORKERS_OWN = _INTERPRETATIONS.c.job_id.is_(None)

# Core statements built once: SQLAlchemy compiles each once and caches it (an expanding IN
# renders its list at execution), so a batch of one panel costs little more than its round trips.
_CLAIM = (
    update(_PANELS)
    .where(
        _PANELS.c.id.in_(bindparam("ids", expanding=True)),
        _PANELS.c.status == PanelStatus.QUEUED.value,
    )
    .values(attempts=_PANELS.c.attempts + bindparam("count"))
    .returning(
        _PANELS.c.id,
        _PANELS.c.clinic_id,
        _PANELS.c.current_revision,
        _PANELS.c.attempts,
        _PANELS.c.updated_at,
    )
)
_DONE = (
    select(literal(1))
    .where(
        _INTERPRETATIONS.c.revision_id == _REVISIONS.c.id,
        _INTERPRETATIONS.c.ruleset == _REVISIONS.c.ruleset,
        _WORKERS_OWN,  # the worker's key: its partial unique index answers this
    )
    .exists()
)
_CURRENT_REVISIONS = (
    select(
        _REVISIONS.c.id,
        _REVISIONS.c.panel_id,
        _REVISIONS.c.revision,
        _REVISIONS.c.ruleset,
        _REVISIONS.c.created_at,
        _REVISIONS.c.collected_at,
        _REVISIONS.c.collected_utc_offset,
        _REVISIONS.c.sex,
        _REVISIONS.c.birth_date,
        _REVISIONS.c.age_years,
        _REVISIONS.c.hemolyzed,
        _REVISIONS.c.specimen_type,
        _CONTEXTS.c.twitching,
        _CONTEXTS.c.symptoms,
        _CONTEXTS.c.factors,
        _CONTEXTS.c.medications,
        _CONTEXTS.c.notes,
        _DONE.label("interpreted"),
    )
    .join(
        _PANELS,
        and_(
            _PANELS.c.id == _REVISIONS.c.panel_id,
            _PANELS.c.current_revision == _REVISIONS.c.revision,
        ),
    )
    .outerjoin(_CONTEXTS, _CONTEXTS.c.revision_id == _REVISIONS.c.id)
    .where(_PANELS.c.id.in_(bindparam("ids", expanding=True)))
)
_RESULTS_OF = (
    select(
        _RESULTS.c.revision_id,
        _RESULTS.c.analyte,
        _RESULTS.c.loinc,
        _RESULTS.c.reported_value,
        _RESULTS.c.reported_unit,
        _RESULTS.c.lab_low,
        _RESULTS.c.lab_high,
        _RESULTS.c.lab_range_text,
        _RESULTS.c.sender_flag,
    )
    .where(_RESULTS.c.revision_id.in_(bindparam("ids", expanding=True)))
    .order_by(_RESULTS.c.revision_id, _RESULTS.c.position)
)
# the panel (bound as panel_id) whose current revision is still the one judged (bound as
# revision_number): a correction committed meanwhile is left to its own task
_STILL_CURRENT = and_(
    _PANELS.c.id == bindparam("panel_id"),
    _PANELS.c.current_revision == bindparam("revision_number"),
)
_SETTLE = (
    update(_PANELS)
    .where(_STILL_CURRENT)
    .values(
        status=bindparam("status"),
        failure_code=bindparam("failure_code"),
        failure=bindparam("failure"),
        updated_at=bindparam("now"),
    )
)
# a panel shows its newest interpretation: the queue's columns, and its review state (back
# to pending unless what it says matches what was reviewed: domain.significance)
_SHOW = (
    update(_PANELS)
    .where(_STILL_CURRENT)
    .values(
        interpretation_id=bindparam("interpretation_id"),
        finding_status=bindparam("finding_status"),
        priority=bindparam("priority"),
        priority_rank=bindparam("priority_rank"),
        finding_codes=bindparam("finding_codes"),
        red_flag_codes=bindparam("red_flag_codes"),
        review_status=case(
            (
                bindparam("needs_review", type_=Boolean),
                case(
                    (
                        _PANELS.c.reviewed_signature == bindparam("signature"),
                        literal(ReviewStatus.REVIEWED.value),
                    ),
                    else_=literal(ReviewStatus.PENDING.value),
                ),
            ),
            else_=null(),
        ),
    )
)

_SHOW_AND_SETTLE = _SHOW.values(
    status=PanelStatus.INTERPRETED.value,
    failure_code=null(),
    failure=null(),
    updated_at=bindparam("now"),
)


def claim_queued(conn: Connection, panel_ids: Sequence[uuid.UUID], *, count: bool) -> list[Claim]:
    """Take up each panel that is still `queued` (its row locked until the caller's
    transaction ends: a duplicate message waits, then finds it done), counting an attempt on
    it when ``count``; return them. Panels already interpreted or failed are left alone."""
    if not panel_ids:
        return []
    rows = conn.execute(_CLAIM, {"ids": list(panel_ids), "count": int(count)})
    return [Claim(*row) for row in rows]


def current_revisions(conn: Connection, panel_ids: Sequence[uuid.UUID]) -> list[StoredRevision]:
    """The current revision of each panel with its results and context, and whether it is
    interpreted under its own ruleset already: two round trips for any number."""
    if not panel_ids:
        return []
    revisions = conn.execute(_CURRENT_REVISIONS, {"ids": list(panel_ids)}).all()
    results: dict[uuid.UUID, list[RawResult]] = {row.id: [] for row in revisions}
    flags: dict[uuid.UUID, dict[int, str | None]] = {row.id: {} for row in revisions}
    if results:
        for row in conn.execute(_RESULTS_OF, {"ids": list(results)}):
            if row.sender_flag is not None:  # positions as the engine counts them, from 0
                flags[row.revision_id][len(results[row.revision_id])] = row.sender_flag
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
            sender_flags=flags[row.id],
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


@dataclass(frozen=True)
class StoredInterpretation:
    """An interpretation this call stored, with its id."""

    id: uuid.UUID
    new: NewInterpretation

    @property
    def priority(self) -> Priority:
        return Priority(self.new.body["priority"])


def store_interpretations(
    conn: Connection, rows: Sequence[NewInterpretation], now: dt.datetime
) -> list[NewInterpretation]:
    """Insert the interpretations and their filter codes; one of a (revision, ruleset) stored
    meanwhile by another worker is skipped. Returns those stored by this call."""
    return [stored.new for stored in store_interpretations_with_ids(conn, rows, now)]


def store_interpretations_with_ids(
    conn: Connection, rows: Sequence[NewInterpretation], now: dt.datetime
) -> list[StoredInterpretation]:
    """:func:`store_interpretations`, returning each stored one with its id."""
    if not rows:
        return []
    ids = {row.revision_id: new_id() for row in rows}
    stored = set(
        conn.scalars(
            insert(conn, _INTERPRETATIONS)
            .on_conflict_do_nothing(
                index_elements=["revision_id", "ruleset"], index_where=_WORKERS_OWN
            )
            .returning(_INTERPRETATIONS.c.revision_id, sort_by_parameter_order=True),
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
            ],
        )
    )
    mine = [row for row in rows if row.revision_id in stored]
    codes = [
        {"interpretation_id": ids[row.revision_id], "code": code, "kind": kind}
        for row in mine
        for code, kind in sorted(filter_codes(row.body))
    ]
    if codes:
        conn.execute(_CODES.insert(), codes)
    return [StoredInterpretation(ids[row.revision_id], row) for row in mine]


def show_newest(
    conn: Connection,
    stored: Sequence[StoredInterpretation],
    *,
    settled_at: dt.datetime | None = None,
) -> None:
    """Make each interpretation its panel's newest (when its revision is still the panel's
    current one): the review queue's columns, and the review state. A panel reviewed against
    an interpretation that said the same stays reviewed; otherwise a flagged or
    indeterminate panel is pending review, and a normal one leaves the queue.

    ``settled_at``: the panels are also settled `interpreted` at that time, as :func:`settle`
    does, in the same update (one new version of each panel row, not two: every update of
    its status or review columns writes an entry in each of the table's indexes)."""
    if not stored:
        return
    common = {} if settled_at is None else {"now": settled_at}
    conn.execute(
        _SHOW if settled_at is None else _SHOW_AND_SETTLE,
        [
            {
                "panel_id": row.new.panel_id,
                "revision_number": row.new.revision,
                "interpretation_id": row.id,
                "finding_status": str(row.new.body["status"]),
                "priority": str(row.new.body["priority"]),
                "priority_rank": Priority(row.new.body["priority"]).rank,
                "finding_codes": sorted({f["code"] for f in row.new.body.get("findings", [])}),
                "red_flag_codes": sorted({f["code"] for f in row.new.body.get("red_flags", [])}),
                "needs_review": FindingStatus(row.new.body["status"]).needs_review,
                "signature": significance(row.new.body),
                **common,
            }
            for row in stored
        ],
    )


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
    conn: Connection,
    revisions: Iterable[tuple[uuid.UUID, int]],
    status: PanelStatus,
    now: dt.datetime,
    failure_code: str | None = None,
    failure: str | None = None,
) -> int:
    """Set the processing status of each panel whose current revision is still the one given
    (checked by the database at the moment of the update, not on a copy read earlier: a
    correction committed meanwhile stays `queued` for its own task). Returns how many were."""
    keys = list(revisions)
    if not keys:
        return 0
    common = {"status": status.value, "failure_code": failure_code, "failure": failure, "now": now}
    return conn.execute(
        _SETTLE, [{"panel_id": panel, "revision_number": rev, **common} for panel, rev in keys]
    ).rowcount


def queued_ages(session: Session | Connection) -> tuple[int, dt.datetime | None]:
    """How many panels are `queued`, and since when the oldest one is (index range scans on
    (status, updated_at), never the whole table)."""
    count, oldest = session.execute(
        select(func.count(), func.min(Panel.updated_at)).where(Panel.status == PanelStatus.QUEUED)
    ).one()
    return int(count), oldest
