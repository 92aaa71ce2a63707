"""Interpretations: one per (revision, ruleset), stored whole, with their codes for filtering."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labinterp.ids import new_id
from labinterp.models.base import Base, UtcDateTime, json_type, utcnow
from labinterp.models.panels import Panel, PanelRevision


class Interpretation(Base):
    """The interpretation document of one revision under one ruleset version."""

    __tablename__ = "interpretations"
    __table_args__ = (
        # the worker's idempotency key: one interpretation per (revision, ruleset), but for
        # those a re-processing job writes (labinterp.services.reprocessing)
        Index(
            "uq_interpretations_revision_id_ruleset",
            "revision_id",
            "ruleset",
            unique=True,
            postgresql_where=text("job_id IS NULL"),
            sqlite_where=text("job_id IS NULL"),
        ),
        # a re-processing job's key: one interpretation per panel per job, however many
        # times a chunk is delivered
        Index(
            "uq_interpretations_job_id_panel_id",
            "job_id",
            "panel_id",
            unique=True,
            postgresql_where=text("job_id IS NOT NULL"),
            sqlite_where=text("job_id IS NOT NULL"),
        ),
        Index(None, "panel_id", "created_at"),  # a panel's newest interpretation
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    panel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("panels.id", ondelete="CASCADE"))
    revision_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("panel_revisions.id", ondelete="CASCADE")
    )
    revision: Mapped[int]  # the revision number, copied for reading without a join
    ruleset: Mapped[str] = mapped_column(String(20))  # ruleset version, e.g. "2026.1"
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(20))  # flagged, indeterminate, normal
    priority: Mapped[str] = mapped_column(String(20))  # critical, urgent, routine
    body: Mapped[dict[str, Any]] = mapped_column(json_type())  # the whole document
    # the re-processing job that wrote it (None: the worker, for a posted or imported panel)
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())

    panel: Mapped[Panel] = relationship(back_populates="interpretations")
    panel_revision: Mapped[PanelRevision] = relationship()
    codes: Mapped[list[InterpretationCode]] = relationship(
        back_populates="interpretation", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return (
            f"Interpretation(panel_id={self.panel_id}, revision={self.revision}, "
            f"ruleset={self.ruleset!r}, status={self.status!r})"
        )


class InterpretationCode(Base):
    """A finding or red-flag code of an interpretation, so panels can be filtered by flag."""

    __tablename__ = "interpretation_codes"

    interpretation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("interpretations.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(60), primary_key=True, index=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)  # finding, red_flag

    interpretation: Mapped[Interpretation] = relationship(back_populates="codes")
