"""How a critical-value alert is signed for a clinic's webhook, as Stripe and GitHub sign theirs.

``X-Labinterp-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``

The timestamp is signed with the body: a receiver that refuses a timestamp older than a few
minutes refuses a replayed request, and one that compares the body it got, byte for byte,
refuses a changed one. :func:`verify` is what a receiver does (the README shows the same in a
few lines of Python); labinterp itself only signs.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Labinterp-Signature"
ALERT_ID_HEADER = "X-Labinterp-Alert-Id"
SCHEME = "v1"
# a receiver's default for how old a signed timestamp may be (seconds)
DEFAULT_TOLERANCE = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},{SCHEME}={signature(secret, timestamp, body)}"


def verify(
    secret: str, header: str, body: bytes, now: float, tolerance: float = DEFAULT_TOLERANCE
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` at a time within ``tolerance``
    seconds of ``now``. Any ``v1`` in the header may match (a receiver rotating its secret
    may be sent several, one per secret)."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME:
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
