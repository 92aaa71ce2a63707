"""Clinician reviews (append-only, each against the interpretation the clinician saw) and
the critical-value alerts sent to a clinic's webhook."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labinterp.ids import new_id
from labinterp.models.base import Base, BigIntegerId, UtcDateTime, utcnow
from labinterp.models.interpretations import Interpretation
from labinterp.models.panels import Panel


class ReviewStatus(StrEnum):
    """Where a flagged or indeterminate panel stands in the review queue."""

    PENDING = "pending"  # not reviewed against what its newest interpretation says
    REVIEWED = "reviewed"


class Decision(StrEnum):
    """A clinician's review decision (API.md "Review")."""

    ACKNOWLEDGED = "acknowledged"
    FOLLOW_UP = "follow_up"
    DISMISSED = "dismissed"


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    panel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("panels.id", ondelete="CASCADE"), index=True
    )
    interpretation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("interpretations.id", ondelete="CASCADE")
    )
    reviewer: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decision: Mapped[str] = mapped_column(String(20))  # Decision
    note: Mapped[str | None] = mapped_column(Text())
    # the significance digest of the interpretation reviewed (domain.significance)
    signature: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)

    panel: Mapped[Panel] = relationship()
    interpretation: Mapped[Interpretation] = relationship()

    def __repr__(self) -> str:
        return f"Review(panel_id={self.panel_id}, decision={self.decision!r})"


class ClinicWebhook(Base):
    """Where a clinic wants critical-value alerts, and the secret they are signed with."""

    __tablename__ = "clinic_webhooks"

    clinic_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clinics.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str] = mapped_column(Text())
    # the HMAC key; shown to nobody after it is set (the clinic holds its own copy)
    secret: Mapped[str] = mapped_column(Text())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200))


class AlertStatus(StrEnum):
    PENDING = "pending"  # not yet delivered; tried again at next_attempt_at
    DELIVERED = "delivered"  # the webhook answered 2xx
    GAVE_UP = "gave_up"  # no 2xx before give_up_at


class Alert(Base):
    """The critical-value alert of one interpretation: at most one, whatever happens."""

    __tablename__ = "alerts"
    __table_args__ = (
        # the sweeper's due alerts (a small index: an alert leaves it once delivered)
        Index(
            "ix_alerts_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    interpretation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("interpretations.id", ondelete="CASCADE"), unique=True
    )
    panel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("panels.id", ondelete="CASCADE"), index=True
    )
    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinics.id"))
    status: Mapped[str] = mapped_column(String(20))  # AlertStatus
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    give_up_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(String(200))  # e.g. "HTTP 503", "timed out"


class AlertAttempt(Base):
    """One try at delivering an alert, whatever came of it."""

    __tablename__ = "alert_attempts"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    url: Mapped[str] = mapped_column(Text())
    status_code: Mapped[int | None] = mapped_column(Integer())
    error: Mapped[str | None] = mapped_column(String(200))
    duration_ms: Mapped[int]
