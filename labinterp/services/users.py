"""Clinician and admin users: created by an operator, signed in on the web pages with an
email and a password (hashed with argon2id, never stored or logged), disabled rather than
deleted (their reviews keep naming them).

Each change and each sign-in, successful or not, is audited in its own transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from labinterp.ids import new_id
from labinterp.models import User
from labinterp.services import audit
from labinterp.services.accounts import CLI, find_clinic, user_actor
from labinterp.services.audit import Actor
from labinterp.services.errors import AlreadyExists, InvalidInput, NotFound, SignInRefused

USER_ROLES = ("clinician", "admin")
MIN_PASSWORD = 10
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
# verified against when the email is unknown, so both answers take as long
_DUMMY_HASH = _HASHER.hash("no such user: a password nobody can know")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _check_email(email: str) -> str:
    email = normalise_email(email)
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > 254 or " " in email:
        raise InvalidInput({"email": [f"{email!r} is not an email address"]})
    return email


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput({"password": [f"a password needs at least {MIN_PASSWORD} characters"]})


def create_user(
    session: Session,
    email: str,
    password: str,
    role: str,
    clinic_names: list[str],
    actor: Actor = CLI,
) -> User:
    """A user who signs in with ``email`` and ``password``. One transaction, audited (never
    the password)."""
    email = _check_email(email)
    if role not in USER_ROLES:
        raise InvalidInput({"role": [f"a user is one of {', '.join(USER_ROLES)}, not {role!r}"]})
    if role == "clinician" and not clinic_names:
        raise InvalidInput({"clinic": ["a clinician reviews at least one clinic (--clinic NAME)"]})
    if role == "admin" and clinic_names:
        raise InvalidInput({"clinic": ["an admin reads every clinic; give no --clinic"]})
    _check_password(password)
    if session.scalars(select(User).where(User.email == email)).first() is not None:
        raise AlreadyExists(f"a user {email!r} already exists")
    clinics = [find_clinic(session, name) for name in dict.fromkeys(clinic_names)]
    user = User(
        id=new_id(),
        email=email,
        password_hash=_HASHER.hash(password),
        role=role,
        created_at=dt.datetime.now(dt.UTC),
    )
    user.clinics = clinics
    session.add(user)
    audit.record(
        session,
        actor,
        "user.create",
        detail={
            "user_id": str(user.id),
            "email": email,
            "role": role,
            "clinic_ids": [str(c.id) for c in clinics],
        },
    )
    session.commit()
    return user


def list_users(session: Session) -> list[User]:
    return list(
        session.scalars(select(User).options(selectinload(User.clinics)).order_by(User.email))
    )


def find_user(session: Session, email: str) -> User:
    user = session.scalars(
        select(User).where(User.email == normalise_email(email)).options(selectinload(User.clinics))
    ).first()
    if user is None:
        raise NotFound(f"user {normalise_email(email)!r}")
    return user


def disable_user(session: Session, email: str, actor: Actor = CLI) -> User:
    """The user can no longer sign in, and their tokens and open sessions stop working (at
    their next request; tokens within LABINTERP_TOKEN_CACHE seconds). Audited; disabling a
    disabled user changes nothing."""
    user = find_user(session, email)
    if user.disabled_at is None:
        user.disabled_at = dt.datetime.now(dt.UTC)
        audit.record(
            session,
            actor,
            "user.disable",
            detail={"user_id": str(user.id), "email": user.email},
        )
        session.commit()
    return user


def set_password(session: Session, email: str, password: str, actor: Actor = CLI) -> User:
    """Give the user a new password (their open sessions stay). One transaction, audited
    (never the password)."""
    _check_password(password)
    user = find_user(session, email)
    user.password_hash = _HASHER.hash(password)
    audit.record(
        session,
        actor,
        "user.password_set",
        detail={"user_id": str(user.id), "email": user.email},
    )
    session.commit()
    return user


def sign_in(session: Session, email: str, password: str, address: str | None) -> Actor:
    """The user's actor when the password is theirs and they are not disabled; else
    SignInRefused (one message whatever the reason). Both outcomes are audited and committed."""
    email = normalise_email(email)
    user = session.scalars(
        select(User).where(User.email == email).options(selectinload(User.clinics))
    ).first()
    ok = False
    try:
        ok = _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if user is None or not ok or user.disabled_at is not None:
        reason = "unknown email" if user is None else "disabled" if ok else "wrong password"
        audit.record(
            session,
            Actor(name=f"user:{email[:180]}", role="anonymous", address=address),
            "user.sign_in_failed",
            detail={"reason": reason},
        )
        session.commit()
        raise SignInRefused("the email or password is not right, or the account is disabled")
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    actor = user_actor(user, address)
    audit.record(session, actor, "user.sign_in", detail={"user_id": str(user.id)})
    session.commit()
    return actor


def session_user(session: Session, user_id: uuid.UUID) -> User | None:
    """The user of a web session, or None when they no longer exist or are disabled."""
    user = session.scalars(
        select(User).where(User.id == user_id).options(selectinload(User.clinics))
    ).first()
    if user is None or user.disabled_at is not None:
        return None
    return user


def sign_out(session: Session, actor: Actor) -> None:
    """Record that the user signed out of the review pages (the caller ends the session).
    Audited and committed."""
    audit.record(session, actor, "user.sign_out", detail={"user_id": str(actor.user_id)})
    session.commit()
