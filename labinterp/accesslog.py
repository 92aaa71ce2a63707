"""gunicorn's access log, with nothing in it that identifies a patient.

A line says who asked (the client address), when, the method, the path, the status, the
bytes sent and the milliseconds taken. Never the query string (``?patient_id=…``), the
Referer (another URL with its query) or any header (``Authorization``); and a path that
carries a patient's id shows ``{id}`` in its place.
"""

from __future__ import annotations

import os
import re
from typing import Any

from gunicorn.glogging import Logger

ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'

# Paths that carry a patient's id, and what the log shows instead. A route with a patient id
# in its path needs its pattern here: tests/unit/test_access_log.py builds every route of the
# app with a patient variable and fails on one whose id would be logged.
PATIENT_PATHS: tuple[tuple[re.Pattern[str], str], ...] = (
    # /api/v1/patients/<path:patient_id>/trend, and anything else under /patients/: the id
    # may hold slashes, so all of it up to a known last segment is the id
    (re.compile(r"^/api/v1/patients/.*?(/trend)?$", re.DOTALL), r"/api/v1/patients/{id}\1"),
)
# the atoms a format may use; gunicorn's others carry the query string (r, q), the Referer
# (f), the user agent (a), a Basic user (u), or every request header and environ value
SAFE_ATOMS = ("h", "l", "t", "s", "m", "H", "b", "B", "T", "D", "M", "L", "p")


def redact_path(path: str) -> str:
    """``path`` with a patient's id replaced by ``{id}``."""
    for pattern, replacement in PATIENT_PATHS:
        if pattern.match(path):
            return pattern.sub(replacement, path, count=1)
    return path


class AccessLogger(Logger):
    """gunicorn's logger whose access-log atoms are only those in :data:`SAFE_ATOMS`, with
    the path redacted: whatever ``access_log_format`` says, no patient data is logged.

    The safe atoms are computed as gunicorn computes them (tests/unit/test_access_log.py holds
    them equal), and nothing else: gunicorn's own ``atoms`` also turns every request header,
    response header and environ entry into an atom on every request, a tenth of a POST's CPU
    under load, only for them to be dropped here."""

    def atoms(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any
    ) -> dict[str, Any]:
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        seconds, micros = request_time.seconds, request_time.microseconds
        method, protocol = environ.get("REQUEST_METHOD"), environ.get("SERVER_PROTOCOL")
        path = redact_path(str(environ.get("PATH_INFO") or ""))
        return {
            "h": environ.get("REMOTE_ADDR", "-"),
            "l": "-",
            "t": self.now(),
            "s": status,
            "m": method,
            "H": protocol,
            "b": "-" if sent is None else str(sent),
            "B": sent,
            "T": seconds,
            "D": seconds * 1_000_000 + micros,
            "M": seconds * 1000 + int(micros / 1000),
            "L": f"{seconds}.{micros:06d}",
            "p": f"<{os.getpid()}>",
            "U": path,
            "r": f"{method} {path} {protocol}",
        }
