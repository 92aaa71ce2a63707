"""Who may see what: clinics (the tenants), clinician users and API tokens."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labinterp.ids import new_id
from labinterp.models.base import Base, BigIntegerId, UtcDateTime, utcnow


class Clinic(Base):
    __tablename__ = "clinics"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # the IANA zone a date-time sent without a UTC offset is read in (HL7 v2 sends local times)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")

    def __repr__(self) -> str:
        return f"Clinic({self.name!r})"


class ClinicCode(Base):
    """A clinic's own result code (HL7 v2 OBX-3 that is not LOINC) and the analyte it names."""

    __tablename__ = "clinic_codes"
    __table_args__ = (UniqueConstraint("clinic_id", "system", "code"),)

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinics.id"))
    system: Mapped[str] = mapped_column(String(40))  # the coding system as sent, e.g. "L", "99LAB"
    code: Mapped[str] = mapped_column(String(60))
    analyte: Mapped[str] = mapped_column(String(60))  # an analyte key of the ruleset

    def __repr__(self) -> str:
        return f"ClinicCode({self.system!r}, {self.code!r} -> {self.analyte!r})"


class User(Base):
    """A clinician (or admin) who logs in to the web UI with a password."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-case
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id, never the password
    role: Mapped[str] = mapped_column(String(20))  # clinician, admin
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    clinics: Mapped[list[Clinic]] = relationship(secondary="user_clinics", order_by=Clinic.name)

    def __repr__(self) -> str:
        return f"User({self.email!r}, role={self.role!r})"


class UserClinic(Base):
    """A clinician's assignment to a clinic (a clinician may have several)."""

    __tablename__ = "user_clinics"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    clinic_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clinics.id", ondelete="CASCADE"), primary_key=True
    )


class ApiToken(Base):
    """A bearer token, stored only as the SHA-256 hex digest of the token shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))  # a label for people
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # the token's first characters, for display
    role: Mapped[str] = mapped_column(String(20))  # clinic, clinician, admin
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())  # to the minute
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())  # None: never
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    # one clinic for role clinic, one or more for clinician, none for admin
    clinics: Mapped[list[Clinic]] = relationship(
        secondary="api_token_clinics", order_by=Clinic.name
    )
    user: Mapped[User | None] = relationship()

    def __repr__(self) -> str:
        return f"ApiToken({self.prefix!r}…, role={self.role!r})"


class ApiTokenClinic(Base):
    """A clinic a token acts for."""

    __tablename__ = "api_token_clinics"

    token_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True
    )
    clinic_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clinics.id", ondelete="CASCADE"), primary_key=True
    )
