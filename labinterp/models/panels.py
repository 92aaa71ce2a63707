"""Patients and their panels: every revision of a panel is kept, verbatim and canonical."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Date,
    ForeignKey,
    Index,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labinterp.ids import new_id
from labinterp.models.base import Base, BigIntegerId, UtcDateTime, json_type, utcnow
from labinterp.models.tenancy import Clinic

if TYPE_CHECKING:
    from labinterp.models.interpretations import Interpretation


class SourceFormat(StrEnum):
    """What a revision was received as."""

    JSON = "json"
    FHIR = "fhir"
    HL7V2 = "hl7v2"


class PanelStatus(StrEnum):
    """Where a panel is in processing (its interpretation's own status is about findings)."""

    QUEUED = "queued"
    INTERPRETED = "interpreted"
    FAILED = "failed"


class FailureCode(StrEnum):
    """Why a panel is `failed`; each has a message for a clinician (services/interpretation)."""

    REJECTED_BY_RULESET = "rejected_by_ruleset"
    RULESET_UNAVAILABLE = "ruleset_unavailable"
    ENGINE_ERROR = "engine_error"
    TIMED_OUT = "timed_out"
    TOO_MANY_ATTEMPTS = "too_many_attempts"


class Patient(Base):
    """A patient as one clinic knows them (``external_id`` is the clinic's own id)."""

    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("clinic_id", "external_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinics.id"))
    # indexed alone too: an admin looks a patient up across clinics
    external_id: Mapped[str] = mapped_column(String(100), index=True)
    sex: Mapped[str] = mapped_column(String(10))  # female, male, unknown
    birth_date: Mapped[dt.date | None] = mapped_column(Date())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    clinic: Mapped[Clinic] = relationship()

    def __repr__(self) -> str:
        return f"Patient({self.external_id!r})"


class Panel(Base):
    """One accession of one clinic. Its content lives in revisions; ``status`` is processing."""

    __tablename__ = "panels"
    __table_args__ = (
        UniqueConstraint("clinic_id", "accession"),
        # the list of a clinic's panels, newest collection first
        Index(None, "clinic_id", "collected_at"),
        # the sweeper and the age of the oldest queued panel (/metrics)
        Index(None, "status", "updated_at"),
        # the relay: panels accepted and not yet handed to the broker (a small index: a
        # panel leaves it as soon as a worker's relay publishes it)
        Index(
            "ix_panels_unpublished",
            "updated_at",
            postgresql_where=text("status = 'queued' AND enqueued_at IS NULL"),
            sqlite_where=text("status = 'queued' AND enqueued_at IS NULL"),
        ),
        # the review queue, pending or reviewed: one ordered index range per clinic
        Index(
            "ix_panels_review_queue",
            "clinic_id",
            "review_status",
            "priority_rank",
            "collected_at",
            "id",  # the order's last key: a page comes straight off the index, unsorted
            postgresql_where=text("review_status IS NOT NULL"),
            sqlite_where=text("review_status IS NOT NULL"),
        ),
        # the review queue with ?status=all
        Index(
            "ix_panels_review_all",
            "clinic_id",
            "priority_rank",
            "collected_at",
            "id",
            postgresql_where=text("review_status IS NOT NULL"),
            sqlite_where=text("review_status IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinics.id"))
    # indexed for a patient's trend; clinic_id is indexed by the unique constraint below
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    accession: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))  # queued, interpreted, failed
    current_revision: Mapped[int]
    # every clinic's panels by collection time (an admin's list)
    collected_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    # when its interpretation was last handed to the broker (the sweeper's clock); None:
    # not yet (a worker's relay publishes it)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # how many times a worker took it up: a panel that keeps failing ends `failed`
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    # why interpretation failed: a code, and a message a clinician can read (no exception
    # text, no SQL, no patient data)
    failure_code: Mapped[str | None] = mapped_column(String(40))
    failure: Mapped[str | None] = mapped_column(Text())

    # the newest interpretation, and what the review queue orders, filters and shows of it
    # without a join (set with it, in its transaction: repositories/interpretations.py)
    interpretation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    finding_status: Mapped[str | None] = mapped_column(String(20))  # FindingStatus
    priority: Mapped[str | None] = mapped_column(String(20))  # Priority
    priority_rank: Mapped[int | None] = mapped_column(SmallInteger())  # Priority.rank
    finding_codes: Mapped[list[str] | None] = mapped_column(json_type())
    red_flag_codes: Mapped[list[str] | None] = mapped_column(json_type())
    # ReviewStatus: pending, reviewed; None: not in the queue (normal, or not interpreted)
    review_status: Mapped[str | None] = mapped_column(String(20))
    # the significance digest (domain.significance) of the interpretation last reviewed
    reviewed_signature: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    clinic: Mapped[Clinic] = relationship()
    patient: Mapped[Patient] = relationship()
    revisions: Mapped[list[PanelRevision]] = relationship(
        back_populates="panel",
        order_by="PanelRevision.revision",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    interpretations: Mapped[list[Interpretation]] = relationship(
        back_populates="panel",
        order_by="[Interpretation.created_at.desc(), Interpretation.revision.desc()]",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    def __repr__(self) -> str:
        return f"Panel({self.accession!r}, status={self.status!r})"


class PanelRevision(Base):
    """A panel's content as received: revision 1, then each correction."""

    __tablename__ = "panel_revisions"
    __table_args__ = (UniqueConstraint("panel_id", "revision"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    panel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("panels.id", ondelete="CASCADE"))
    revision: Mapped[int]
    content_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 hex of the parsed request
    collected_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    sex: Mapped[str] = mapped_column(String(10))
    birth_date: Mapped[dt.date | None] = mapped_column(Date())
    age_years: Mapped[int | None]
    hemolyzed: Mapped[bool]
    specimen_type: Mapped[str | None] = mapped_column(String(50))
    # the ruleset that accepted this revision, and so the one it is interpreted with: a task
    # that runs late never judges it under a ruleset activated since
    ruleset: Mapped[str] = mapped_column(String(20))
    # the UTC offset the collection time was sent with, in minutes: age bands turn over on
    # the local calendar date of collection (collected_at itself is stored in UTC)
    collected_utc_offset: Mapped[int] = mapped_column(default=0, server_default="0")
    body: Mapped[dict[str, Any]] = mapped_column(json_type())  # the request as parsed, for audit
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))  # token id or name
    # what it was received as (SourceFormat: json, fhir, hl7v2; None: JSON stored before
    # interop existed), the document exactly as received (FHIR and HL7 v2 only; JSON is
    # ``body``), and what it held that was kept but not judged ([{"path", "code", "display",
    # "reason"}])
    source_format: Mapped[str | None] = mapped_column(String(20))
    source_document: Mapped[str | None] = mapped_column(Text())
    not_interpreted: Mapped[list[dict[str, str]] | None] = mapped_column(json_type())

    panel: Mapped[Panel] = relationship(back_populates="revisions")
    results: Mapped[list[Result]] = relationship(
        back_populates="revision",
        order_by="Result.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    context: Mapped[PanelContext | None] = relationship(
        back_populates="revision",
        uselist=False,
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    def __repr__(self) -> str:
        return f"PanelRevision(panel_id={self.panel_id}, revision={self.revision})"


class Result(Base):
    """One result: the value and unit as reported, verbatim, and in the canonical unit."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    revision_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("panel_revisions.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]  # order in the request, from 0
    analyte: Mapped[str] = mapped_column(String(40))
    loinc: Mapped[str | None] = mapped_column(String(20))
    reported_value: Mapped[str] = mapped_column(String(40))  # verbatim decimal text: "1.10"
    reported_unit: Mapped[str] = mapped_column(String(40))
    value: Mapped[Decimal] = mapped_column(Numeric(18, 6))  # in the canonical unit
    unit: Mapped[str] = mapped_column(String(20))  # the analyte's canonical unit
    lab_low: Mapped[str | None] = mapped_column(String(40))  # the lab's range, verbatim
    lab_high: Mapped[str | None] = mapped_column(String(40))
    lab_range_text: Mapped[str | None] = mapped_column(Text())
    # the sender's own flag (L, HH, A, N …), verbatim, kept beside ours
    sender_flag: Mapped[str | None] = mapped_column(String(20))

    revision: Mapped[PanelRevision] = relationship(back_populates="results")

    def __repr__(self) -> str:
        return f"Result({self.analyte!r}, {self.reported_value} {self.reported_unit})"


class PanelContext(Base):
    """The clinical context sent with a revision: twitching, symptoms, factors, medications."""

    __tablename__ = "panel_contexts"

    revision_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("panel_revisions.id", ondelete="CASCADE"), primary_key=True
    )
    # {"sites": [...], "duration_days": N, "frequency": "..."}
    twitching: Mapped[dict[str, Any] | None] = mapped_column(json_type())
    symptoms: Mapped[list[str]] = mapped_column(json_type(), default=list)
    factors: Mapped[list[str]] = mapped_column(json_type(), default=list)
    medications: Mapped[list[str]] = mapped_column(json_type(), default=list)
    notes: Mapped[str | None] = mapped_column(Text())  # free text, verbatim

    revision: Mapped[PanelRevision] = relationship(back_populates="context")
