"""Clinics and API tokens. A token is shown once and stored only as its SHA-256 hash.

Creating a clinic, creating a token and revoking one are audited in the same transaction:
who did it (the CLI operator), what, and the ids, never the token nor its hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import uuid
import zoneinfo
from dataclasses import dataclass, replace

from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, joinedload

from labinterp.ids import new_id
from labinterp.models import ApiToken, Clinic, User
from labinterp.services import audit
from labinterp.services.audit import Actor
from labinterp.services.errors import AlreadyExists, InvalidInput, NotFound, TokenRefused

log = logging.getLogger(__name__)

ROLES = ("clinic", "clinician", "admin")
TOKEN_PREFIX = "li_"  # noqa: S105 - the public prefix every token starts with, not a secret
# a token's last use is written at most this often: a request that uses a token only reads
RECORD_USE_EVERY = dt.timedelta(seconds=60)

# who acts when a command names no operator (tests, the demo)
CLI = Actor(name="cli", role="admin")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def valid_time_zone(name: str) -> str:
    """``name`` when it is an IANA time zone zoneinfo knows; InvalidInput naming it if not."""
    name = name.strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            {
                "time_zone": [
                    f"unknown time zone {name!r}; use an IANA name such as Europe/Brussels or UTC"
                ]
            }
        ) from None
    return name


def create_clinic(
    session: Session, name: str, actor: Actor = CLI, *, time_zone: str = "UTC"
) -> Clinic:
    """One transaction, audited. A clinic name is unique. ``time_zone``: where a date-time
    sent without a UTC offset (HL7 v2) is read."""
    name = name.strip()
    if not name:
        raise InvalidInput({"name": ["a clinic needs a name"]})
    time_zone = valid_time_zone(time_zone)
    if session.scalars(select(Clinic).where(Clinic.name == name)).first() is not None:
        raise AlreadyExists(f"clinic {name!r} already exists")
    clinic = Clinic(id=new_id(), name=name, created_at=dt.datetime.now(dt.UTC), time_zone=time_zone)
    session.add(clinic)
    audit.record(
        session,
        actor,
        "clinic.create",
        clinic_id=clinic.id,
        detail={"clinic_id": str(clinic.id), "name": name, "time_zone": time_zone},
    )
    session.commit()
    return clinic


def set_clinic_time_zone(session: Session, name: str, time_zone: str, actor: Actor = CLI) -> Clinic:
    """One transaction, audited: the zone a clinic's date-times without an offset are read in."""
    time_zone = valid_time_zone(time_zone)
    clinic = find_clinic(session, name)
    before = clinic.time_zone
    clinic.time_zone = time_zone
    audit.record(
        session,
        actor,
        "clinic.time_zone",
        clinic_id=clinic.id,
        detail={"clinic_id": str(clinic.id), "from": before, "to": time_zone},
    )
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
    expires_at: dt.datetime | None = None


def create_token(
    session: Session,
    role: str,
    clinic_names: list[str],
    name: str | None = None,
    *,
    expires_at: dt.datetime | None = None,
    actor: Actor = CLI,
    user_email: str | None = None,
) -> IssuedToken:
    """Issue a token for a role (and its clinics), valid until ``expires_at`` (None: until
    revoked). One transaction, audited without the token.

    A token for a user (``user_email``) acts as that user: their role, the clinics they are
    assigned to at each request, and it stops working when they are disabled."""
    user = None
    if user_email is not None:
        user = session.scalars(select(User).where(User.email == user_email.strip().lower())).first()
        if user is None:
            raise NotFound(f"user {user_email.strip().lower()!r}")
        if clinic_names:
            raise InvalidInput({"clinic": ["a user's token reads the user's clinics; no --clinic"]})
        if role != user.role:
            raise InvalidInput({"role": [f"{user.email} is a {user.role}, not a {role}"]})
        if user.disabled_at is not None:
            raise InvalidInput({"user": [f"{user.email} is disabled"]})
    if role not in ROLES:
        raise InvalidInput({"role": [f"unknown role {role!r}; use one of {', '.join(ROLES)}"]})
    if role == "clinic" and len(clinic_names) != 1:
        raise InvalidInput(
            {"clinic": ["a clinic token acts for exactly one clinic (--clinic NAME)"]}
        )
    if role == "clinician" and not clinic_names and user is None:
        raise InvalidInput({"clinic": ["a clinician token needs at least one --clinic"]})
    if role == "admin" and clinic_names:
        raise InvalidInput({"clinic": ["an admin token reads every clinic; give no --clinic"]})
    now = dt.datetime.now(dt.UTC)
    if expires_at is not None and expires_at <= now:
        raise InvalidInput({"expires_in": ["a token must expire in the future"]})
    clinics = [find_clinic(session, n) for n in clinic_names]
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        id=new_id(),
        name=name or f"{role} token",
        token_hash=hash_token(token),
        prefix=token[:12],
        role=role,
        created_at=now,
        expires_at=expires_at,
        user_id=None if user is None else user.id,
    )
    row.clinics = clinics
    session.add(row)
    audit.record(
        session,
        actor,
        "token.create",
        clinic_id=clinics[0].id if len(clinics) == 1 else None,
        detail={
            "token_id": str(row.id),
            "role": role,
            "name": row.name,
            "clinic_ids": [str(c.id) for c in clinics],
            "user_id": None if user is None else str(user.id),
            "expires_at": None if expires_at is None else expires_at.isoformat(),
        },
    )
    session.commit()
    return IssuedToken(token=token, token_id=row.id, role=role, expires_at=expires_at)


def resolve_token(session: Session, token: str, now: dt.datetime | None = None) -> Actor:
    """The actor behind a presented token; TokenRefused when it is unknown, revoked or expired.

    One round trip in the common case. The token's last use is recorded when it was never
    recorded or is older than RECORD_USE_EVERY: a second statement, once a minute per token,
    whose condition leaves it to one of several requests arriving together. It commits.
    """
    now = now or dt.datetime.now(dt.UTC)
    row = (
        session.scalars(
            select(ApiToken)
            .where(ApiToken.token_hash == hash_token(token))
            # one round trip on every request
            .options(
                joinedload(ApiToken.clinics),
                joinedload(ApiToken.user).joinedload(User.clinics),
            )
        )
        .unique()
        .first()
    )
    if row is None or row.revoked_at is not None:
        raise TokenRefused("unknown or revoked API token")
    if row.user is not None:
        if row.user.disabled_at is not None:
            raise TokenRefused("the user of this API token is disabled")
        actor = replace(user_actor(row.user), token_id=row.id, expires_at=row.expires_at)
    else:
        actor = _token_actor(row)
    if actor.expired(now):
        raise TokenRefused("expired API token")
    if row.last_used_at is None or row.last_used_at < now - RECORD_USE_EVERY:
        _record_use(session, row.id, now)
    return actor


def user_actor(user: User, address: str | None = None) -> Actor:
    """The actor a user acts as (signed in, or through their token): their role and the
    clinics they are assigned to now."""
    return Actor(
        name=f"user:{user.email}",
        role=user.role,
        clinic_ids=None if user.role == "admin" else frozenset(c.id for c in user.clinics),
        clinic_names={c.id: c.name for c in user.clinics},
        user_id=user.id,
        address=address,
    )


def _token_actor(row: ApiToken) -> Actor:
    return Actor(
        # fits the 100-character `created_by` columns whatever the label's length
        name=f"token:{row.prefix}…({_shorten(row.name, 60)})",
        role=row.role,
        clinic_ids=None if row.role == "admin" else frozenset(c.id for c in row.clinics),
        token_id=row.id,
        clinic_names={c.id: c.name for c in row.clinics},
        expires_at=row.expires_at,
    )


def _record_use(session: Session, token_id: uuid.UUID, now: dt.datetime) -> None:
    """Set last_used_at unless another request did within the minute. Best effort: a
    database too busy to take the write does not refuse the request."""
    stale = now - RECORD_USE_EVERY
    try:
        session.execute(
            update(ApiToken)
            .where(
                ApiToken.id == token_id,
                or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < stale),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    except OperationalError:
        session.rollback()
        log.warning("could not record the use of token %s; the request goes on", token_id)


def revoke_token(session: Session, token_id: uuid.UUID, actor: Actor = CLI) -> ApiToken:
    """Revoke a token, named by its id: each API process refuses it within
    LABINTERP_TOKEN_CACHE seconds (default 5; 0 makes it at once). One
    transaction, audited. Revoking a revoked token changes nothing."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound("token")
    if row.revoked_at is None:
        row.revoked_at = dt.datetime.now(dt.UTC)
        audit.record(
            session,
            actor,
            "token.revoke",
            detail={"token_id": str(row.id), "role": row.role, "name": row.name},
        )
        session.commit()
    return row


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
