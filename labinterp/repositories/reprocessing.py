"""Set-based queries of re-processing jobs: plan a job's chunks of panel ids, read a chunk's
panels with their newest interpretation, store a chunk's interpretations in bulk (COPY on
PostgreSQL, one multi-row INSERT elsewhere).

Never commits: labinterp.services.reprocessing does. Works on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    bindparam,
    func,
    select,
    true,
    update,
)

from labinterp import jsontext
from labinterp.ids import new_id
from labinterp.models import (
    Interpretation,
    InterpretationCode,
    JobStatus,
    Panel,
    PanelStatus,
    ReprocessingChunk,
    ReprocessingJob,
)
from labinterp.repositories import interpretations as interpretations_repo
from labinterp.repositories.dialects import dialect_name
from labinterp.repositories.interpretations import (
    NewInterpretation,
    StoredInterpretation,
    StoredRevision,
)

_PANELS = cast(Table, Panel.__table__)
_INTERPRETATIONS = cast(Table, Interpretation.__table__)
_CODES = cast(Table, InterpretationCode.__table__)
_CHUNKS = cast(Table, ReprocessingChunk.__table__)
_JOBS = cast(Table, ReprocessingJob.__table__)


@dataclass(frozen=True)
class PanelFilter:
    """Which panels a job re-processes: interpreted ones, of a clinic (or all), collected in a
    window (inclusive; None: open), created before the job (later ones are the live
    pipeline's, interpreted with the active ruleset)."""

    clinic_id: uuid.UUID | None
    collected_from: dt.datetime | None
    collected_to: dt.datetime | None
    created_before: dt.datetime

    def where(self) -> ColumnElement[bool]:
        conditions = [
            _PANELS.c.status == PanelStatus.INTERPRETED.value,
            _PANELS.c.interpretation_id.is_not(None),
            _PANELS.c.created_at <= self.created_before,
        ]
        if self.clinic_id is not None:
            conditions.append(_PANELS.c.clinic_id == self.clinic_id)
        if self.collected_from is not None:
            conditions.append(_PANELS.c.collected_at >= self.collected_from)
        if self.collected_to is not None:
            conditions.append(_PANELS.c.collected_at <= self.collected_to)
        return and_(true(), *conditions)

    def overlaps(self, other: PanelFilter) -> bool:
        """Whether some panel could match both (same clinic or either all, windows meet)."""
        if self.clinic_id and other.clinic_id and self.clinic_id != other.clinic_id:
            return False
        if self.collected_from and other.collected_to and other.collected_to < self.collected_from:
            return False
        return not (
            self.collected_to and other.collected_from and self.collected_to < other.collected_from
        )


@dataclass(frozen=True)
class Chunk:
    seq: int
    first_id: uuid.UUID
    next_id: uuid.UUID | None
    panels: int


def plan_chunks(conn: Connection, where: PanelFilter, size: int) -> list[Chunk]:
    """Cut the matching panels into chunks of ``size`` in id order (keyset: each chunk is an
    id range, never an OFFSET): one query, whose rows are the first id of each chunk, numbered
    by a window function in the database (the ids themselves never leave it)."""
    numbered = (
        select(
            _PANELS.c.id,
            (func.row_number().over(order_by=_PANELS.c.id) - 1).label("n"),
            func.count().over().label("total"),
        )
        .where(where.where())
        .subquery()
    )
    rows = conn.execute(
        select(numbered.c.id, numbered.c.total)
        .where(numbered.c.n % size == 0)
        .order_by(numbered.c.id)
    ).all()
    if not rows:
        return []
    total = int(rows[0].total)
    return [
        Chunk(
            seq=n,
            first_id=row.id,
            next_id=rows[n + 1].id if n + 1 < len(rows) else None,
            panels=min(size, total - n * size),
        )
        for n, row in enumerate(rows)
    ]


def store_chunks(
    conn: Connection, job_id: uuid.UUID, chunks: Sequence[Chunk], now: dt.datetime
) -> None:
    if chunks:
        conn.execute(
            _CHUNKS.insert(),
            [
                {
                    "job_id": job_id,
                    "seq": c.seq,
                    "first_id": c.first_id,
                    "next_id": c.next_id,
                    "panels": c.panels,
                    "dispatched_at": now,
                }
                for c in chunks
            ],
        )


def count_attempt(conn: Connection, job_id: uuid.UUID, seq: int) -> int | None:
    """Count one more take of the chunk if it is not done; its attempts now (None: done)."""
    return conn.scalar(
        update(_CHUNKS)
        .where(_CHUNKS.c.job_id == job_id, _CHUNKS.c.seq == seq, _CHUNKS.c.done_at.is_(None))
        .values(attempts=_CHUNKS.c.attempts + 1)
        .returning(_CHUNKS.c.attempts)
    )


def lock_chunk(conn: Connection, job_id: uuid.UUID, seq: int) -> Chunk | None:
    """The chunk if it is not done yet, its row locked until the caller's transaction ends (a
    duplicate delivery waits, then finds it done); None when done or unknown."""
    stmt = select(_CHUNKS).where(
        _CHUNKS.c.job_id == job_id, _CHUNKS.c.seq == seq, _CHUNKS.c.done_at.is_(None)
    )
    row = conn.execute(_for_update(conn, stmt)).first()
    if row is None:
        return None
    return Chunk(row.seq, row.first_id, row.next_id, row.panels)


def finish_chunk(conn: Connection, job_id: uuid.UUID, seq: int, now: dt.datetime) -> None:
    conn.execute(
        update(_CHUNKS).where(_CHUNKS.c.job_id == job_id, _CHUNKS.c.seq == seq).values(done_at=now)
    )


def chunks_left(conn: Connection, job_id: uuid.UUID) -> int:
    return int(
        conn.scalar(
            select(func.count())
            .select_from(_CHUNKS)
            .where(_CHUNKS.c.job_id == job_id, _CHUNKS.c.done_at.is_(None))
        )
        or 0
    )


def lost_chunks(conn: Connection, cutoff: dt.datetime, limit: int) -> list[tuple[uuid.UUID, int]]:
    """Chunks of running jobs not done and last handed to the broker before ``cutoff``."""
    rows = conn.execute(
        select(_CHUNKS.c.job_id, _CHUNKS.c.seq)
        .join(_JOBS, _JOBS.c.id == _CHUNKS.c.job_id)
        .where(
            _JOBS.c.status == JobStatus.RUNNING.value,
            _CHUNKS.c.done_at.is_(None),
            _CHUNKS.c.dispatched_at < cutoff,
        )
        .order_by(_CHUNKS.c.dispatched_at)
        .limit(limit)
    ).all()
    return [(row.job_id, row.seq) for row in rows]


def stamp_dispatched(
    conn: Connection, chunks: Sequence[tuple[uuid.UUID, int]], now: dt.datetime
) -> None:
    if chunks:
        conn.execute(
            update(_CHUNKS)
            .where(_CHUNKS.c.job_id == bindparam("b_job_id"), _CHUNKS.c.seq == bindparam("b_seq"))
            .values(dispatched_at=now),
            [{"b_job_id": job, "b_seq": seq} for job, seq in chunks],
        )


def lock_job(conn: Connection, job_id: uuid.UUID) -> Any:
    """The job's row, locked until the caller's transaction ends (chunks merge their counts
    into it one at a time, at the very end of their transaction)."""
    return conn.execute(_for_update(conn, select(_JOBS).where(_JOBS.c.id == job_id))).first()


def read_job(conn: Connection, job_id: uuid.UUID) -> Any:
    return conn.execute(select(_JOBS).where(_JOBS.c.id == job_id)).first()


def update_job(conn: Connection, job_id: uuid.UUID, **values: Any) -> None:
    conn.execute(update(_JOBS).where(_JOBS.c.id == job_id).values(**values))


def queued_jobs_before(conn: Connection, cutoff: dt.datetime) -> list[uuid.UUID]:
    """Queued jobs whose plan was last handed to the broker before ``cutoff``."""
    return list(
        conn.scalars(
            select(_JOBS.c.id).where(
                _JOBS.c.status == JobStatus.QUEUED.value, _JOBS.c.dispatched_at < cutoff
            )
        )
    )


def stamp_jobs_dispatched(conn: Connection, job_ids: Sequence[uuid.UUID], now: dt.datetime) -> None:
    if job_ids:
        conn.execute(update(_JOBS).where(_JOBS.c.id.in_(list(job_ids))).values(dispatched_at=now))


def _for_update(conn: Connection, stmt: Any) -> Any:
    # SQLite has no row locks: its writers take turns on the whole file (db.write_transaction)
    return stmt.with_for_update() if dialect_name(conn) == "postgresql" else stmt


@dataclass(frozen=True)
class Newest:
    """What a panel's newest interpretation says, for comparing the new one with."""

    status: str
    priority: str
    findings: list[dict[str, Any]]


def chunk_revisions(
    conn: Connection, chunk: Chunk, where: PanelFilter
) -> tuple[list[StoredRevision], dict[uuid.UUID, Newest]]:
    """The chunk's matching panels (their current revisions, results and context, as the
    worker reads them) and what each one's newest interpretation says: three round trips."""
    in_range = [where.where(), _PANELS.c.id >= chunk.first_id]
    if chunk.next_id is not None:
        in_range.append(_PANELS.c.id < chunk.next_id)
    rows = conn.execute(
        select(
            _PANELS.c.id,
            _INTERPRETATIONS.c.status,
            _INTERPRETATIONS.c.priority,
            _INTERPRETATIONS.c.body["findings"].label("findings"),
        )
        .join(_INTERPRETATIONS, _INTERPRETATIONS.c.id == _PANELS.c.interpretation_id)
        .where(*in_range)
        .order_by(_PANELS.c.id)
    ).all()
    newest = {row.id: Newest(row.status, row.priority, list(row.findings or [])) for row in rows}
    revisions = interpretations_repo.current_revisions(conn, list(newest))
    return revisions, newest


def store_job_interpretations(
    conn: Connection, job_id: uuid.UUID, rows: Sequence[NewInterpretation], now: dt.datetime
) -> list[StoredInterpretation]:
    """Write the chunk's interpretations (never an UPDATE of an earlier one) and their filter
    codes, in bulk: on PostgreSQL with COPY (about twice as fast as a multi-row INSERT of
    bodies this size), elsewhere one multi-row INSERT. The (job, panel) key refuses a second
    interpretation of a panel by the job; the caller holds the chunk's row lock, so none is
    ever attempted (one that was would fail the chunk's transaction, leaving nothing of it).
    Returns them with their ids."""
    if not rows:
        return []
    stored = [StoredInterpretation(new_id(), row) for row in rows]
    records = [
        (
            s.id,
            s.new.panel_id,
            s.new.revision_id,
            s.new.revision,
            s.new.ruleset,
            now,
            str(s.new.body["status"]),
            str(s.new.body["priority"]),
            s.new.body,
            job_id,
        )
        for s in stored
    ]
    codes = [
        (s.id, code, kind)
        for s in stored
        for code, kind in sorted(interpretations_repo.filter_codes(s.new.body))
    ]
    if dialect_name(conn) == "postgresql":
        _copy(
            conn,
            _INTERPRETATIONS,
            _COLUMNS,
            [(*r[:8], jsontext.dumps(r[8]), r[9]) for r in records],
        )
        _copy(conn, _CODES, ("interpretation_id", "code", "kind"), codes)
        return stored
    conn.execute(
        _INTERPRETATIONS.insert(),
        [dict(zip(_COLUMNS, record, strict=True)) for record in records],
    )
    if codes:
        conn.execute(
            _CODES.insert(),
            [{"interpretation_id": i, "code": code, "kind": kind} for i, code, kind in codes],
        )
    return stored


_COLUMNS = (
    "id",
    "panel_id",
    "revision_id",
    "revision",
    "ruleset",
    "created_at",
    "status",
    "priority",
    "body",
    "job_id",
)


def _copy(
    conn: Connection, table: Table, columns: Sequence[str], records: Sequence[Sequence[Any]]
) -> None:
    """COPY ``records`` into ``table`` on the connection's own transaction (psycopg)."""
    if not records:
        return
    raw = cast(Any, conn.connection.dbapi_connection)
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for record in records:
            copy.write_row(record)
