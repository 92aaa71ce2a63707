"""One POST to a clinic's webhook, answered by what came of it in a few words.

urllib3 with no retries (the alert's own schedule retries, and records each try), no
redirects followed (a 3xx is an answer that is not 2xx: the alert goes where the admin said,
never elsewhere), TLS certificates verified, and a short total timeout, so a webhook that
hangs costs a worker process seconds, never minutes. The response body is never read: it is
not ours to keep, and a receiver might echo the alert (patient data) back into it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import urllib3
from celery.exceptions import SoftTimeLimitExceeded
from urllib3.exceptions import (
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3Timeout

DEFAULT_TIMEOUT_SECONDS = 10.0  # well inside the task's soft time limit (broker.py)


@dataclass(frozen=True)
class PostOutcome:
    """What a POST came to: the status code answered, or a short error (never a body)."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def problem(self) -> str | None:
        """Why it was not delivered, in a few words ("HTTP 503", "timed out"); None if it was."""
        if self.delivered:
            return None
        return self.error or f"HTTP {self.status_code}"


class WebhookClient:
    """POSTs alerts; one per worker process (its connection pools are per process)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self._pool = urllib3.PoolManager(
            retries=False,
            timeout=urllib3.Timeout(total=timeout),
            headers={"User-Agent": "labinterp-alerts"},
        )

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> PostOutcome:
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            response = self._pool.request(
                "POST",
                url,
                body=body,
                headers=dict(headers),
                redirect=False,
                preload_content=False,
            )
        except Exception as exc:  # every failure is an outcome to record (the soft time limit too)
            error = describe_failure(exc)
        else:
            status = response.status
            response.close()  # unread: see the module's docstring
        elapsed = round((time.perf_counter() - started) * 1000)
        return PostOutcome(status, error, elapsed)


def describe_failure(exc: BaseException) -> str:
    """A failed POST in a few words for the attempt's record and the log: never the
    exception's text, which may quote the URL (and a token in it)."""
    if isinstance(exc, NameResolutionError):
        return "host not found"
    if isinstance(exc, NewConnectionError):
        if isinstance(exc.__cause__, ConnectionRefusedError):
            return "connection refused"
        return "connection failed"
    if isinstance(exc, Urllib3Timeout | TimeoutError | SoftTimeLimitExceeded):
        return "timed out"
    if isinstance(exc, SSLError):
        return "TLS error"
    if isinstance(exc, ProtocolError):
        return "connection closed without an answer"
    return f"failed ({type(exc).__name__})"
