"""POST /api/v1/panels answered in front of Flask, for a request with nothing unusual about it.

The service's hottest route. Flask's request machinery (a request and an app context, the URL
map, the session, six hooks, a Response object) cost about a fifth of a POST's CPU, more than
anything labinterp itself does for it. :class:`PanelPostRoute` wraps the app's WSGI callable
and answers a POST to exactly ``/api/v1/panels`` itself when every check the Flask route
makes passes, in the same order, with the same functions:

1. the bearer token (``auth.actor_of_bearer``: the token cache, else one database read), a
   clinic's, from an address not refused for failed sign-ins; the token's rate limit counted;
2. the body: a Content-Length within the limit, ``application/json`` in UTF-8 without a
   Content-Encoding, JSON text (``jsontext.loads``: exact decimals, no repeated key, no lone
   surrogate escape), a panel ``PanelIn`` loads;
3. ``panels.submit_panel``, the same service call, and the same answer: the status, body and
   headers (``Location``, the security headers, ``RateLimit-*``) the Flask route gives, and
   the same request metrics.

Anything else (no token or a refused one, another role, a chunked or oversized body, another
type, JSON that is not a valid panel) goes to the Flask app untouched, which words the answer:
problem+json, 401 before 403 before 413/415/400/422. What this route read is handed on, never
read twice: the body (``read_body``'s cache in the environ) and the rate-limit count
(``auth.COUNTED``: a request is counted once, whichever path answers it). When the service
call itself raises (a panel the clinical acceptance refuses, a conflicting accession, a
database that does not answer), the exception is handed on too (``REFUSED``): Flask's view
raises it instead of submitting the panel a second time, and its handlers word the 422, 409
or 503. Nothing is written before the service call.

tests/api/test_fast_post.py holds this route's answers equal to the Flask route's, header by
header, for new panels, repeats and every kind of refusal.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from marshmallow import ValidationError

from labinterp import metrics
from labinterp.api import auth
from labinterp.api.headers import DATA_POLICY
from labinterp.api.parsing import SURROGATE_ESCAPE, read_at_most
from labinterp.api.problems import Problem
from labinterp.api.ratelimit import failed_logins_of, limiter_of
from labinterp.jsontext import dumps, loads
from labinterp.runtime import Runtime
from labinterp.schemas.output import PanelOut, dump_new_panel
from labinterp.schemas.panels import PanelIn
from labinterp.services import panels as panel_service
from labinterp.services import reading

log = logging.getLogger(__name__)

PATH = "/api/v1/panels"  # also the URL rule the request metrics name it by
# environ key: what the service raised for a panel this route submitted (a refusal, a
# conflict, a database that did not answer): Flask's view raises it instead of submitting the
# panel a second time (api/panels.py)
REFUSED = "labinterp.refused"
POSTERS = frozenset({"clinic"})

StartResponse = Callable[..., Any]
_STATUS_LINES = {200: "200 OK", 202: "202 ACCEPTED"}
# Flask's security headers for a JSON answer with patient data (api/headers.py)
_SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", DATA_POLICY),
    ("Cache-Control", "no-store"),
]


class _HandOn(Exception):
    """This request is Flask's to answer."""


# what makes Flask's route the one to answer (its wording, its refusal), not this one
_FLASKS = (_HandOn, Problem, ValidationError, ValueError)


class PanelPostRoute:
    """The app's WSGI callable, with POST /api/v1/panels answered in front of Flask when
    nothing about the request is unusual (see the module's description)."""

    def __init__(self, app: Flask, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.flask_wsgi = app.wsgi_app  # everything else, and every refusal
        self.panel_in = PanelIn()
        self.panel_out = PanelOut()
        # the request metrics' series this route counts in (labels() looked up once)
        self._answered = {
            status: metrics.HTTP_REQUESTS.labels("POST", PATH, str(status))
            for status in _STATUS_LINES
        }
        self._latency = metrics.HTTP_LATENCY.labels("POST", PATH)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.flask_wsgi(environ, start_response)
        started = time.perf_counter()
        try:
            status, body, headers = self._answer(environ)
        except _FLASKS:
            return self.flask_wsgi(environ, start_response)
        except Exception as exc:  # a defect here: Flask's route answers, its handlers log it
            log.warning("POST %s handed to Flask after %s", PATH, type(exc).__name__)
            return self.flask_wsgi(environ, start_response)
        self._answered[status].inc()
        self._latency.observe(time.perf_counter() - started)
        start_response(_STATUS_LINES[status], headers)
        return [body]

    def _answer(self, environ: dict[str, Any]) -> tuple[int, bytes, list[tuple[str, str]]]:
        address = environ.get("REMOTE_ADDR")
        actor = self._actor(environ, address or "-").at_address(address)
        quota = self._count(environ, actor)
        document = self.panel_in.load(self._json(environ))
        rt = self.runtime
        clinic = panel_service.ClinicRef.of_clinic_token(actor)
        if clinic is None:  # a clinic token has one clinic (accounts.create_token)
            raise _HandOn
        try:
            result = panel_service.submit_panel(
                rt.engine, actor, clinic, document, rt.current_ruleset(), dt.datetime.now(dt.UTC)
            )
        except Exception as refused:  # the route's view raises it, for Flask's handlers to word
            environ[REFUSED] = refused
            raise _HandOn from None
        view = result.document
        if view is None:  # a repeat: the stored panel, read as Flask's route reads it
            with rt.session_factory() as session:
                view = reading.read_panel(
                    session, actor, rt.rulesets, result.panel_id, audited=False
                )
        out = dump_new_panel(view)
        body = dumps(self.panel_out.dump(view) if out is None else out).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Location", f"{PATH}/{result.panel_id}"),
            *_SECURITY_HEADERS,
        ]
        if quota is not None:
            headers += quota.headers().items()
        return (202 if result.created else 200), body, headers

    def _actor(self, environ: dict[str, Any], address: str) -> Any:
        """The token's actor, a poster's, as ``auth.authenticate`` and ``auth.admit`` find it."""
        guard = failed_logins_of(self.app)
        if guard is not None:
            guard.refuse_if_blocked(address)
        with contextlib.ExitStack() as opened:
            actor = auth.actor_of_bearer(
                environ.get("HTTP_AUTHORIZATION", ""),
                auth.token_cache(self.app),
                lambda: opened.enter_context(self.runtime.session_factory()),
            )
        if actor.role not in POSTERS:
            raise _HandOn
        return actor

    def _count(self, environ: dict[str, Any], actor: Any) -> Any:
        """The token's rate limit, counted once for this request whichever path answers."""
        limiter = limiter_of(self.app)
        try:
            quota = None if limiter is None else limiter.hit(str(actor.token_id))
        except Problem as refused:
            environ[auth.COUNTED] = refused
            raise
        environ[auth.COUNTED] = quota
        return quota

    def _json(self, environ: dict[str, Any]) -> Any:
        """The body as ``parsing.read_body`` and ``LabParser`` read it, when nothing about it
        needs their words; kept in the environ for them either way."""
        mimetype, _, params = environ.get("CONTENT_TYPE", "").partition(";")
        if mimetype.strip().lower() != "application/json":
            raise _HandOn
        if params.strip() and params.strip().lower().replace(" ", "") not in (
            "charset=utf-8",
            'charset="utf-8"',
            "charset=utf8",
        ):
            raise _HandOn
        if environ.get("HTTP_CONTENT_ENCODING", "identity").strip().lower() not in (
            "",
            "identity",
        ):
            raise _HandOn
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            raise _HandOn
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or int(length) > self.app.config["MAX_CONTENT_LENGTH"]:
            raise _HandOn
        data = read_at_most(environ["wsgi.input"], int(length))
        environ.setdefault("labinterp.cache", {})["body"] = data
        if len(data) != int(length) or SURROGATE_ESCAPE.search(data):
            raise _HandOn
        return loads(data)


def install_fast_post(app: Flask, runtime: Runtime) -> None:
    """Put :class:`PanelPostRoute` in front of the app (``app.wsgi_app``: gunicorn, the test
    client and ``flask run`` all come through it)."""
    app.wsgi_app = PanelPostRoute(app, runtime)  # type: ignore[method-assign]
