"""One database session per request, closed when the request ends."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from labinterp.runtime import Runtime


def runtime() -> Runtime:
    return current_app.extensions["labinterp"]


def db() -> Session:
    if "db" not in g:
        g.db = runtime().session_factory()
    return g.db


def init_session(app: Flask) -> None:
    @app.teardown_appcontext
    def _close(exc: BaseException | None) -> None:
        session = g.pop("db", None)
        if session is not None:
            session.close()
