"""Operating the service: the audit trail, settings and reprocessing jobs."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, Uuid, event, text
from sqlalchemy.orm import Mapped, mapped_column

from labinterp.ids import new_id
from labinterp.models.base import Base, BigIntegerId, UtcDateTime, json_type, utcnow


class AuditEvent(Base):
    """Who read or changed what, when, from where. No foreign keys: the trail outlives what
    it names. Append-only: nothing in labinterp updates or deletes a row.

    A read of several panels is one event naming them in ``detail["panel_ids"]``.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_actor_at", "actor", "at"),
        # PostgreSQL: ?panel_id= finds the list reads that named the panel too
        Index(
            "ix_audit_events_panel_ids", text("(detail -> 'panel_ids')"), postgresql_using="gin"
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(60))  # e.g. panel.create, panel.read
    clinic_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    panel_id: Mapped[uuid.UUID | None] = mapped_column(Uuid(), index=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(json_type())
    address: Mapped[str | None] = mapped_column(String(64))  # the caller's IP address
    token_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())

    def __repr__(self) -> str:
        return f"AuditEvent({self.action!r} by {self.actor!r} at {self.at})"


class AuditEventChanged(Exception):
    """An audit event was changed or deleted through the ORM: the trail is append-only."""


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _append_only(_mapper: Any, _connection: Any, target: AuditEvent) -> None:
    # the ORM's guard; migration 0004's triggers refuse any other UPDATE or DELETE
    raise AuditEventChanged(f"audit events are append-only: {target!r} was not changed")


class Setting(Base):
    """A runtime setting changed by an admin (e.g. the active ruleset)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class JobStatus(StrEnum):
    """Where a re-processing job stands (API.md "Rulesets and reprocessing")."""

    QUEUED = "queued"  # created; its chunks are not planned yet
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in (JobStatus.QUEUED, JobStatus.RUNNING)


class ReprocessingJob(Base):
    """Re-interpreting stored panels with another ruleset, or only counting what would change.

    Worked in chunks of panel ids (:class:`ReprocessingChunk`); ``processed``, ``changed``,
    ``failed`` and ``summary`` grow in each chunk's own transaction
    (labinterp.services.reprocessing).
    """

    __tablename__ = "reprocessing_jobs"
    __table_args__ = (Index(None, "status", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    ruleset: Mapped[str] = mapped_column(String(20))
    dry_run: Mapped[bool]
    filter: Mapped[dict[str, Any]] = mapped_column(json_type(), default=dict)
    status: Mapped[str] = mapped_column(String(20))  # queued, running, done, failed, cancelled
    total: Mapped[int] = mapped_column(default=0)
    processed: Mapped[int] = mapped_column(default=0)
    changed: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    summary: Mapped[dict[str, Any] | None] = mapped_column(json_type())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_by: Mapped[str | None] = mapped_column(String(200))
    # why the job failed (a sentence for an operator), when it did
    error: Mapped[str | None] = mapped_column(Text())
    # when its plan was last handed to the broker (the sweeper's clock for a queued job)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    def __repr__(self) -> str:
        return f"ReprocessingJob({self.ruleset!r}, status={self.status!r})"


class ReprocessingChunk(Base):
    """The panels of a job with ids from ``first_id`` up to (not including) ``next_id``
    (None: to the end), worked in one transaction; ``done_at`` is set in that transaction,
    so a chunk delivered again finds it done and does nothing."""

    __tablename__ = "reprocessing_chunks"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("reprocessing_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(primary_key=True)  # 0, 1, ... in id order
    first_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    next_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    panels: Mapped[int]  # how many panels the plan counted in it
    # how many times a worker took it up: a chunk that keeps failing fails its job
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    # when its task was last handed to the broker (the sweeper's clock)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    done_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    def __repr__(self) -> str:
        return f"ReprocessingChunk(job_id={self.job_id}, seq={self.seq})"
