"""Clinician reviews: append-only, each against the interpretation the clinician saw."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labinterp.models.base import Base, UtcDateTime, utcnow
from labinterp.models.interpretations import Interpretation
from labinterp.models.panels import Panel


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid.uuid4)
    panel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("panels.id", ondelete="CASCADE"), index=True
    )
    interpretation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("interpretations.id", ondelete="CASCADE")
    )
    reviewer: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(20))  # acknowledged, follow_up, dismissed
    note: Mapped[str | None] = mapped_column(Text())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)

    panel: Mapped[Panel] = relationship()
    interpretation: Mapped[Interpretation] = relationship()

    def __repr__(self) -> str:
        return f"Review(panel_id={self.panel_id}, decision={self.decision!r})"
