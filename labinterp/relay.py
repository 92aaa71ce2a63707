"""The relay loop: a thread of each worker process that publishes accepted panels to the
broker (see labinterp.services.relay).

It looks for unpublished panels every 10 ms (one query on a partial index that holds only
them: next to nothing when none waits), publishes what it finds, many panels per message, and
looks again at once while it finds a full batch. It does not wait for PostgreSQL's
notifications: a NOTIFY serialises the commits of every POST (PostgreSQL takes one lock for
the notification queue at each commit), which costs far more than looking. When the broker
refuses a message it backs off; when the database is away it waits and tries again: it never
stops the worker.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from sqlalchemy import Engine

from labinterp.services.dispatch import Dispatcher
from labinterp.services.relay import relay_unpublished

log = logging.getLogger(__name__)

LOOK_EVERY_SECONDS = 0.01
BACKOFF_SECONDS = 5.0  # after the broker or the database failed


class Relay:
    def __init__(self, engine: Engine, dispatcher: Dispatcher) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labinterp-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                relayed = relay_unpublished(self.engine, self.dispatcher, dt.datetime.now(dt.UTC))
            except Exception as exc:  # the database is away: wait, try again
                log.warning("relay: cannot read the panels to publish (%s)", type(exc).__name__)
                self._stop.wait(BACKOFF_SECONDS)
                continue
            if relayed.unsent:
                log.warning(
                    "relay: the broker refused %d panel(s); trying again in %g s",
                    relayed.unsent,
                    BACKOFF_SECONDS,
                )
                self._stop.wait(BACKOFF_SECONDS)
            elif not relayed.full:
                self._stop.wait(LOOK_EVERY_SECONDS)
