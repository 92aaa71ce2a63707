"""Clinics and API tokens. A token is shown once and stored only as its SHA-256 hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from labinterp.models import ApiToken, Clinic
from labinterp.services import audit
from labinterp.services.audit import Actor
from labinterp.services.errors import AlreadyExists, InvalidInput, NotFound

ROLES = ("clinic", "clinician", "admin")
TOKEN_PREFIX = "li_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_clinic(session: Session, name: str) -> Clinic:
    """One transaction. A clinic name is unique."""
    name = name.strip()
    if not name:
        raise InvalidInput({"name": ["a clinic needs a name"]})
    if session.scalars(select(Clinic).where(Clinic.name == name)).first() is not None:
        raise AlreadyExists(f"clinic {name!r} already exists")
    clinic = Clinic(id=uuid.uuid4(), name=name, created_at=dt.datetime.now(dt.UTC))
    session.add(clinic)
    session.commit()
    return clinic


def find_clinic(session: Session, name: str) -> Clinic:
    clinic = session.scalars(select(Clinic).where(Clinic.name == name)).first()
    if clinic is None:
        raise NotFound(f"clinic {name!r}")
    return clinic


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once, never stored
    token_id: uuid.UUID
    role: str


def create_token(
    session: Session, role: str, clinic_names: list[str], name: str | None = None
) -> IssuedToken:
    """Issue a token for a role (and its clinics). One transaction."""
    if role not in ROLES:
        raise InvalidInput({"role": [f"unknown role {role!r}; use one of {', '.join(ROLES)}"]})
    if role == "clinic" and len(clinic_names) != 1:
        raise InvalidInput(
            {"clinic": ["a clinic token acts for exactly one clinic (--clinic NAME)"]}
        )
    if role == "clinician" and not clinic_names:
        raise InvalidInput({"clinic": ["a clinician token needs at least one --clinic"]})
    if role == "admin" and clinic_names:
        raise InvalidInput({"clinic": ["an admin token reads every clinic; give no --clinic"]})
    clinics = [find_clinic(session, n) for n in clinic_names]
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        id=uuid.uuid4(),
        name=name or f"{role} token",
        token_hash=hash_token(token),
        prefix=token[:12],
        role=role,
        created_at=dt.datetime.now(dt.UTC),
    )
    row.clinics = clinics
    session.add(row)
    session.commit()
    return IssuedToken(token=token, token_id=row.id, role=role)


def resolve_token(session: Session, token: str) -> Actor | None:
    """The actor behind a presented token, or None when unknown or revoked."""
    row = (
        session.scalars(
            select(ApiToken)
            .where(ApiToken.token_hash == hash_token(token))
            .options(joinedload(ApiToken.clinics))  # one round trip on every request
        )
        .unique()
        .first()
    )
    if row is None or row.revoked_at is not None:
        return None
    return Actor(
        # fits the 100-character `created_by` columns whatever the label's length
        name=f"token:{row.prefix}…({_shorten(row.name, 60)})",
        role=row.role,
        clinic_ids=None if row.role == "admin" else frozenset(c.id for c in row.clinics),
        token_id=row.id,
        clinic_names={c.id: c.name for c in row.clinics},
    )


CLI = Actor(name="cli", role="admin")


def revoke_token(session: Session, token: str) -> ApiToken:
    """Revoke a token, named by its id or by the token itself; from the next request on it
    answers 401. One transaction, audited. Revoking a revoked token changes nothing."""
    row = _find_token(session, token.strip())
    if row is None:
        raise NotFound("token")
    if row.revoked_at is None:
        row.revoked_at = dt.datetime.now(dt.UTC)
        audit.record(
            session,
            CLI,
            "token.revoke",
            detail={"token_id": str(row.id), "prefix": row.prefix, "role": row.role},
        )
        session.commit()
    return row


def _find_token(session: Session, token: str) -> ApiToken | None:
    if token.startswith(TOKEN_PREFIX):
        return session.scalars(
            select(ApiToken).where(ApiToken.token_hash == hash_token(token))
        ).first()
    try:
        return session.get(ApiToken, uuid.UUID(token))
    except ValueError:
        return None


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, newest first, with its clinics (none of them shows the token itself)."""
    return list(
        session.scalars(
            select(ApiToken)
            .options(joinedload(ApiToken.clinics))
            .order_by(ApiToken.created_at.desc(), ApiToken.id)
        ).unique()
    )


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
