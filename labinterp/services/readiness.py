"""Whether this API process can serve: the database (reachable, schema current), the broker.

A check answers one fixed phrase a person can act on ("unreachable", "timed out", "schema not
current"), never the exception's text, which can name hosts, users, or a URL with its password.
The exception goes to this process's log instead, passwords masked.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from labinterp.redaction import mask_passwords

log = logging.getLogger(__name__)

OK = "ok"
UNREACHABLE = "unreachable"
TIMED_OUT = "timed out"
SCHEMA_NOT_CURRENT = "schema not current"


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str  # one of the phrases above (or another fixed phrase), never exception text

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "detail": self.detail}


def failed(dependency: str, exc: BaseException) -> str:
    """Log why ``dependency`` failed (passwords masked); the fixed phrase for the answer."""
    phrase = TIMED_OUT if _is_timeout(exc) else UNREACHABLE
    log.warning(
        "readiness: the %s is %s: %s",
        dependency,
        phrase,
        mask_passwords(f"{type(exc).__name__}: {exc}"),
    )
    return phrase


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError | socket.timeout | PoolTimeout):
        return True
    if type(exc).__name__ == "TimeoutError":  # redis.exceptions.TimeoutError and the like
        return True
    cause = getattr(exc, "orig", None) or exc.__cause__
    if cause is not None and cause is not exc and _is_timeout(cause):
        return True
    words = str(exc).lower()
    return "timeout" in words or "timed out" in words


def check_database(session: Session, heads: Collection[str]) -> Check:
    """The database answers and its schema is the one this code was written for."""
    try:
        current = set(session.scalars(text("SELECT version_num FROM alembic_version")))
    except DBAPIError as exc:
        session.rollback()
        if _no_such_table(exc):
            log.warning("readiness: the database has no schema (run `labinterp db upgrade`)")
            return Check(False, SCHEMA_NOT_CURRENT)
        return Check(False, failed("database", exc))
    except Exception as exc:  # a pool timeout, a DNS failure ...
        session.rollback()
        return Check(False, failed("database", exc))
    if current != set(heads):
        log.warning(
            "readiness: the database schema is at %s, this code needs %s "
            "(run `labinterp db upgrade`)",
            ", ".join(sorted(current)) or "nothing",
            ", ".join(sorted(heads)),
        )
        return Check(False, SCHEMA_NOT_CURRENT)
    return Check(True, OK)


def _no_such_table(exc: DBAPIError) -> bool:
    """alembic_version is missing: PostgreSQL's undefined_table, SQLite's "no such table"."""
    if isinstance(exc, ProgrammingError) and getattr(exc.orig, "sqlstate", None) == "42P01":
        return True
    return "no such table" in str(exc.orig).lower()
