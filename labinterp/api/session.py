"""One database session per request, closed when the request ends."""

from __future__ import annotations

from flask import Flask, current_app, g
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.orm import Session

from labinterp.runtime import Runtime


def runtime() -> Runtime:
    return current_app.extensions["labinterp"]


def db() -> Session:
    if "db" not in g:
        g.db = runtime().session_factory()
    return g.db


class _SessionCookies(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signing serializer made once per app rather
    than on every request (the API, which uses no session, pays for opening one on each)."""

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        serializer: URLSafeTimedSerializer | None = app.extensions.get(_SERIALIZER)
        if serializer is None:
            serializer = super().get_signing_serializer(app)
            app.extensions[_SERIALIZER] = serializer
        return serializer


_SERIALIZER = "labinterp.session_serializer"


def init_session(app: Flask) -> None:
    app.session_interface = _SessionCookies()

    @app.teardown_appcontext
    def _close(exc: BaseException | None) -> None:
        session = g.pop("db", None)
        if session is not None:
            session.close()
