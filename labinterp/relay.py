"""The relay loop: a thread of each worker process that publishes accepted panels to the
broker (see labinterp.services.relay).

On PostgreSQL it sleeps on ``LISTEN`` and wakes when a POST commits (the insert sends a
notification), so a panel reaches the broker a few milliseconds after its 202; it also looks
every few seconds in case a notification was missed (a reconnect, a panel revised). On SQLite,
which has no notifications, it looks every 50 ms. When the broker refuses a message it backs
off; when the database is away it waits and tries again: it never stops the worker.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

from sqlalchemy import Engine

from labinterp.repositories.new_panels import NOTIFY_CHANNEL
from labinterp.services.dispatch import Dispatcher
from labinterp.services.relay import relay_unpublished

log = logging.getLogger(__name__)

SQLITE_POLL_SECONDS = 0.05
POSTGRES_LOOK_ANYWAY_SECONDS = 2.0  # a missed notification costs at most this
GATHER_SECONDS = 0.002  # after a wake-up, let the panels of a burst arrive: one message for many
BACKOFF_SECONDS = 5.0  # after the broker or the database failed


class Relay:
    def __init__(self, engine: Engine, dispatcher: Dispatcher) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labinterp-relay", daemon=True)
        self._listener: Any = None  # the PostgreSQL connection that LISTENs, and its pool entry
        self._listener_entry: Any = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._close_listener()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                relayed = relay_unpublished(self.engine, self.dispatcher, dt.datetime.now(dt.UTC))
            except Exception as exc:  # the database is away: wait, try again
                log.warning("relay: cannot read the panels to publish (%s)", type(exc).__name__)
                self._close_listener()
                self._stop.wait(BACKOFF_SECONDS)
                continue
            if relayed.unsent:
                log.warning(
                    "relay: the broker refused %d panel(s); trying again in %g s",
                    relayed.unsent,
                    BACKOFF_SECONDS,
                )
                self._stop.wait(BACKOFF_SECONDS)
            elif relayed.published:
                log.info("relay: published %d panel(s)", relayed.published)
            else:
                self._wait_for_panels()

    def _wait_for_panels(self) -> None:
        if self.engine.dialect.name != "postgresql":
            self._stop.wait(SQLITE_POLL_SECONDS)
            return
        try:
            listener = self._listen()
            woken = False
            for _ in listener.notifies(timeout=POSTGRES_LOOK_ANYWAY_SECONDS, stop_after=1):
                woken = True
            if woken:
                time.sleep(GATHER_SECONDS)
                for _ in listener.notifies(timeout=0.0):  # the burst's other notifications
                    pass
        except Exception as exc:
            log.warning("relay: lost its notifications (%s); looking again", type(exc).__name__)
            self._close_listener()
            self._stop.wait(1.0)

    def _listen(self) -> Any:
        if self._listener is None:
            self._listener_entry = self.engine.raw_connection()
            connection = self._listener_entry.driver_connection
            connection.autocommit = True
            connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self._listener = connection
        return self._listener

    def _close_listener(self) -> None:
        entry, self._listener, self._listener_entry = self._listener_entry, None, None
        if entry is not None:
            try:
                entry.invalidate()  # never back to the pool: it is in autocommit and LISTENs
            except Exception:
                log.debug("relay: closing its listening connection failed", exc_info=True)
