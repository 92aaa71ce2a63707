"""A fixed-window request limit per token, with the IETF draft ``RateLimit-*`` headers, and
one on failed authentications per remote address (:class:`FailedLogins`).

Where the counters live, so that every API process shares one budget per token:

* with a Redis broker, in Redis (shared by every API process on every machine);
* on the embedded default (no server), in a small SQLite file of its own in the instance
  folder (``ratelimit.db``, never the main database: limiter writes do not contend with panel
  writes), shared by every API process on this machine: one UPSERT per request.

If the counter store fails (Redis does not answer; the SQLite file is locked too long, the disk
is full), counting falls back to the process and the outage is logged once: a limiter outage
never takes the API down and never holds a request up for long (one try, half a second at
most). The failed store is left alone for ``_RETRY_STORE_AFTER`` seconds, then tried again.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, current_app, g

from labinterp.api.problems import Problem

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
STORE_FILE = "ratelimit.db"
_TIMEOUT = 0.5  # seconds: a Redis call, or a wait on the SQLite file's lock
_RETRY_STORE_AFTER = 10.0  # seconds a failed counter store (Redis or SQLite) is left alone
_EXTENSION = "labinterp.ratelimit"
_FAILED_LOGINS = "labinterp.failed-logins"

_CREATE = """
CREATE TABLE IF NOT EXISTS hits (
    "key" TEXT NOT NULL,
    "window" INTEGER NOT NULL,
    "count" INTEGER NOT NULL,
    PRIMARY KEY ("key", "window")
) WITHOUT ROWID
"""
_HIT = """
INSERT INTO hits ("key", "window", "count") VALUES (?, ?, 1)
ON CONFLICT ("key", "window") DO UPDATE SET "count" = "count" + 1
RETURNING "count"
"""
_SWEEP = 'DELETE FROM hits WHERE "window" < ?'


@dataclass(frozen=True)
class Quota:
    """Where a token stands in the current window, after this request was counted."""

    limit: int
    remaining: int
    reset: int  # seconds to the window's end

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


class SQLiteCounter:
    """Counters in a SQLite file shared by every process on the machine (one per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._swept_window = 0

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")  # counters: losing the last few is fine
            conn.execute(_CREATE)
        except BaseException:
            conn.close()
            raise
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def incr(self, key: str, window: int) -> int:
        conn = self._connection()
        if window > self._swept_window:  # about once a minute per process: drop old windows
            with self._lock:
                sweep = window > self._swept_window
                self._swept_window = max(window, self._swept_window)
            if sweep:
                conn.execute(_SWEEP, (window - 1,))
        # fetchall: the statement runs to its end, so its write is committed at once
        return int(conn.execute(_HIT, (key, window)).fetchall()[0][0])

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class RedisCounter:
    """Counters in Redis, shared by every API process on every machine."""

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(
            url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT, retry=None
        )
        self.where = "Redis"

    def incr(self, key: str, window: int) -> int:
        name = f"labinterp:rate:{key}:{window}"
        pipe = self._redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, 2 * WINDOW_SECONDS)
        return int(pipe.execute()[0])

    def close(self) -> None:
        self._redis.close()


class Limiter:
    """One app's limit and counters; :data:`limiter` finds the current app's."""

    def __init__(
        self, per_minute: int, redis_url: str | None = None, instance_path: Path | None = None
    ) -> None:
        self.per_minute = per_minute
        self._store: SQLiteCounter | RedisCounter | None = None
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}
        self._store_down_until = 0.0
        self._store_outage_logged = False
        if per_minute <= 0:
            return
        if redis_url:
            self._store = RedisCounter(redis_url)
        elif instance_path is not None:
            self._store = SQLiteCounter(Path(instance_path) / STORE_FILE)

    def hit(self, key: str) -> Quota | None:
        """Count one request for ``key``; 429 when it is over the limit (None: no limit)."""
        if self.per_minute <= 0:
            return None
        count, _, reset = self.count(key)
        quota = Quota(limit=self.per_minute, remaining=max(0, self.per_minute - count), reset=reset)
        if count > self.per_minute:
            raise Problem(
                429,
                f"more than {self.per_minute} requests in a minute for this token; "
                f"retry in {quota.reset} s",
                headers={**quota.headers(), "Retry-After": str(quota.reset)},
            )
        return quota

    def count(self, key: str) -> tuple[int, int, int]:
        """Count one more for ``key`` in this minute: (count so far, the window, seconds to
        its end)."""
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        return self._count(key, window), window, WINDOW_SECONDS - int(now % WINDOW_SECONDS)

    def _count(self, key: str, window: int) -> int:
        if self._store is not None and time.monotonic() >= self._store_down_until:
            try:
                count = self._store.incr(key, window)
            except Exception:  # Redis silent, disk full, locked too long, unwritable folder ...
                self._store_failed()
            else:
                if self._store_outage_logged:
                    self._store_outage_logged = False
                    log.warning("rate-limit counters in %s work again", self._store.where)
                return count
        return self._count_here(key, window)

    def _store_failed(self) -> None:
        """Count in this process for a while: a failed store is not asked on every request
        (each would wait out its timeout)."""
        assert self._store is not None  # noqa: S101 - only called after the store failed
        self._store_down_until = time.monotonic() + _RETRY_STORE_AFTER
        self._store.close()
        if not self._store_outage_logged:
            self._store_outage_logged = True
            log.warning(
                "rate-limit counters in %s failed; counting in this process until they work "
                "again (the limit is per process meanwhile)",
                self._store.where,
                exc_info=True,
            )

    def _count_here(self, key: str, window: int) -> int:
        with self._lock:
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            self._counts[(key, window)] = self._counts.get((key, window), 0) + 1
            return self._counts[(key, window)]


def _add_headers(response: Response) -> Response:
    """The RateLimit-* headers on every response to a request that was counted."""
    quota: Quota | None = g.get("rate_limit")
    if quota is not None:
        for name, value in quota.headers().items():
            response.headers.setdefault(name, value)
    return response


class FailedLogins:
    """Failed authentications per remote address: after ``per_minute`` of them in a minute,
    the address is answered 429 until that minute is over, before any token is looked up.

    The counts are shared (the same stores as the per-token limit), so at most ``per_minute``
    failures a minute from one address are answered 401, whichever API process takes them;
    any failure beyond is a 429. Which addresses are refused outright is known per process,
    from the counts it sees (no extra read of the store on every request): a process refuses
    an address before looking its token up once it has counted one of its failures at or
    over the limit.
    """

    def __init__(
        self, per_minute: int, redis_url: str | None = None, instance_path: Path | None = None
    ) -> None:
        self.per_minute = per_minute
        self._counter = Limiter(per_minute, redis_url, instance_path)
        self._lock = threading.Lock()
        self._refused: dict[str, int] = {}  # address -> the window it is refused in

    def refuse_if_blocked(self, address: str) -> None:
        """429 for an address this process already refuses in the current minute."""
        if self.per_minute <= 0 or not self._refused:
            return
        now = time.time()
        if self._refused.get(address) == int(now // WINDOW_SECONDS):
            raise self._problem(WINDOW_SECONDS - int(now % WINDOW_SECONDS))

    def failed(self, address: str) -> None:
        """Count a failed authentication; 429 (instead of the 401) beyond the limit."""
        if self.per_minute <= 0:
            return
        count, window, reset = self._counter.count(f"auth-failure:{address}")
        if count >= self.per_minute:
            with self._lock:  # forget the minutes that are over
                self._refused = {a: w for a, w in self._refused.items() if w >= window}
                self._refused[address] = window
        if count > self.per_minute:
            raise self._problem(reset)

    def _problem(self, reset: int) -> Problem:
        return Problem(
            429,
            f"more than {self.per_minute} failed authentications in a minute from this "
            f"address; retry in {reset} s",
            headers={"Retry-After": str(reset)},
        )


def limiter_of(app: Flask) -> Limiter | None:
    """The app's per-token limit (None before :meth:`_CurrentLimiter.configure`)."""
    return app.extensions.get(_EXTENSION)


def failed_logins_of(app: Flask) -> FailedLogins | None:
    """The app's guard on failed authentications per address."""
    return app.extensions.get(_FAILED_LOGINS)


class _CurrentLimiter:
    """The module-level entry point: configured per app, counting with the current app's."""

    def configure(
        self,
        app: Flask,
        per_minute: int,
        redis_url: str | None,
        instance_path: Path | None = None,
        failed_logins_per_minute: int = 0,
    ) -> Limiter:
        limiter = Limiter(per_minute, redis_url, instance_path)
        app.extensions[_EXTENSION] = limiter
        app.extensions[_FAILED_LOGINS] = FailedLogins(
            failed_logins_per_minute, redis_url, instance_path
        )
        app.after_request(_add_headers)
        return limiter

    def hit(self, key: str) -> Quota | None:
        configured: Limiter | None = current_app.extensions.get(_EXTENSION)
        return configured.hit(key) if configured is not None else None

    def refuse_if_blocked(self, address: str) -> None:
        guard: FailedLogins | None = current_app.extensions.get(_FAILED_LOGINS)
        if guard is not None:
            guard.refuse_if_blocked(address)

    def failed_login(self, address: str) -> None:
        guard: FailedLogins | None = current_app.extensions.get(_FAILED_LOGINS)
        if guard is not None:
            guard.failed(address)


limiter = _CurrentLimiter()
