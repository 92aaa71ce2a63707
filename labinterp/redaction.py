"""Text fit for a log line: secrets in connection strings masked, exceptions without their
messages.

Exception messages from database and broker clients can carry the URL or DSN they were
given, password included (a DSN that did not parse, a redirect, a client's repr); and any
exception's message can quote the data it failed on, which here is patient data.
"""

from __future__ import annotations

import re
import traceback

# scheme://user:password@host -> scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
# password=secret in a libpq DSN or a query string
_KEY_PASSWORD = re.compile(r"(?P<head>\b(?:password|passwd|pwd)\s*=\s*)[^\s&;]+", re.IGNORECASE)


def mask_passwords(text: str) -> str:
    """``text`` with the password of every URL and every ``password=`` replaced by ***."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _KEY_PASSWORD.sub(r"\g<head>***", text)


def describe_exception(exc: BaseException, frames: int = 6) -> str:
    """An exception for a log line: its type, the SQLSTATE when a database raised it, and
    where it was raised (the innermost ``frames`` frames), for it and each exception it was
    raised from. Never its message, which may quote the values it failed on: a patient's id,
    a birth date, a result (a database's "Key (external_id)=(P-0042) already exists")."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = type(current)
        name = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else f"{kind.__module__}.{kind.__qualname__}"
        )
        sqlstate = getattr(getattr(current, "orig", None), "sqlstate", None) or getattr(
            current, "sqlstate", None
        )
        where = " < ".join(
            f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}"
            for frame in reversed(traceback.extract_tb(current.__traceback__)[-frames:])
        )
        parts.append(
            name
            + (f" (SQLSTATE {sqlstate})" if sqlstate else "")
            + (f" at {where}" if where else "")
        )
        current = current.__cause__ or current.__context__
    return "; raised from ".join(parts) + " (message withheld: it may hold patient data)"
