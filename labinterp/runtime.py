"""Per-process resources shared by the API, the worker and the CLI.

Created lazily and once per process id, so a forked Celery or gunicorn worker never reuses
its parent's database connections.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from labinterp.config import Settings, load_settings
from labinterp.db import make_engine, make_session_factory
from labinterp.domain import Ruleset
from labinterp.rulesets import load_rulesets


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    rulesets: dict[str, Ruleset]
    celery: Celery  # for publishing; the worker's own app is worker.celery_app


_lock = threading.Lock()
_runtime: tuple[int, Runtime] | None = None


def build_runtime(settings: Settings) -> Runtime:
    from worker.celery_app import make_celery

    engine = make_engine(settings.database_url)
    return Runtime(
        celery=make_celery(settings),
        settings=settings,
        engine=engine,
        session_factory=make_session_factory(engine),
        rulesets=load_rulesets(settings.rulesets_dir),
    )


def get_runtime() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None or _runtime[0] != os.getpid():
            _runtime = (os.getpid(), build_runtime(load_settings()))
        return _runtime[1]


def set_runtime(runtime: Runtime) -> None:
    """Install a runtime built elsewhere (the Flask app factory, tests)."""
    global _runtime
    with _lock:
        _runtime = (os.getpid(), runtime)
