"""Per-process resources shared by the API, the worker and the CLI.

Created lazily and once per process id, so a forked Celery or gunicorn worker never reuses
its parent's database connections.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from labinterp.broker import make_celery
from labinterp.config import Settings, load_settings
from labinterp.db import make_engine, make_session_factory
from labinterp.domain import Ruleset
from labinterp.rulesets import load_rulesets
from labinterp.services.dispatch import Dispatcher
from labinterp.services.rulesets import cached_active_ruleset


class ActiveRulesetCache:
    """Which ruleset is active, remembered for a few seconds by each process: a POST does not
    read the setting every time. Activation in this process is seen at once (:meth:`forget`);
    in the others within :attr:`seconds`."""

    def __init__(self, seconds: float = 2.0) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._value: tuple[float, str] | None = None

    def get(self) -> str | None:
        with self._lock:
            if self._value is None or time.monotonic() >= self._value[0]:
                return None
            return self._value[1]

    def put(self, version: str) -> None:
        with self._lock:
            self._value = (time.monotonic() + self.seconds, version)

    def forget(self) -> None:
        with self._lock:
            self._value = None


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    rulesets: dict[str, Ruleset]
    celery: Celery  # for publishing; the worker process registers the tasks (worker.tasks)
    dispatcher: Dispatcher
    active_ruleset: ActiveRulesetCache = field(default_factory=ActiveRulesetCache)

    def current_ruleset(self) -> Ruleset:
        """The ruleset new panels are accepted under now (the active one, cached a few
        seconds: services.rulesets.cached_active_ruleset)."""
        return cached_active_ruleset(
            self.session_factory, self.active_ruleset, self.rulesets, self.settings.default_ruleset
        )


_lock = threading.Lock()
_runtime: tuple[int, Runtime] | None = None


def build_runtime(settings: Settings) -> Runtime:
    engine = make_engine(
        settings.database_url, statement_timeout_seconds=settings.statement_timeout_seconds
    )
    celery = make_celery(settings)
    return Runtime(
        celery=celery,
        dispatcher=Dispatcher(celery),
        settings=settings,
        engine=engine,
        session_factory=make_session_factory(engine),
        rulesets=load_rulesets(settings.rulesets_dir),
    )


def get_runtime(settings: Settings | None = None) -> Runtime:
    """This process's runtime: the one installed or built here, else one built from
    ``settings`` (or, for the CLI, from the environment)."""
    global _runtime
    with _lock:
        if _runtime is None or _runtime[0] != os.getpid():
            _runtime = (os.getpid(), build_runtime(settings or load_settings()))
        return _runtime[1]


def set_runtime(runtime: Runtime) -> None:
    """Install a runtime built elsewhere (the Flask app factory, tests)."""
    global _runtime
    with _lock:
        _runtime = (os.getpid(), runtime)
