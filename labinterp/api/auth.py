"""Bearer-token authentication and roles: every endpoint needs a role unless it is public.

Deny by default. ``@roles(...)`` on a view declares who may call it; :data:`PUBLIC_ENDPOINTS`
names the few endpoints anyone may call. :func:`install_access_control` refuses to start an
app with an endpoint that is neither, and installs a gate that runs before every view: a
request to a non-public endpoint without a valid token is 401 before anything else happens
(API.md's order: 401, then 403, then the body's 413, 415, 400, 422, 409), whatever the view
forgot. ``@roles`` checks again inside the view, without a second lookup.

The clinician's web pages follow the same rules from the same table, signed in with a session
cookie instead of a token: ``@page_roles(...)`` declares who may see a page; without a
session the gate redirects to the sign-in page (:class:`SignInRequired`), and a signed-in user
of another role is refused (:class:`PageForbidden`); the web blueprint renders both.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
import uuid
from collections.abc import Callable, Collection
from typing import Any, TypeVar, cast

from flask import Flask, current_app, g, request, session
from sqlalchemy.orm import Session

from labinterp.api.openapi import document_roles
from labinterp.api.problems import Problem
from labinterp.api.ratelimit import limiter
from labinterp.api.session import db
from labinterp.services.accounts import hash_token, resolve_token, user_actor
from labinterp.services.audit import Actor
from labinterp.services.errors import TokenRefused
from labinterp.services.users import session_user

F = TypeVar("F", bound=Callable[..., Any])
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="labinterp"'}

# Anyone may call these, without a token: liveness, readiness, metrics, the API's own
# documentation and its files. Nothing with patient data belongs here.
PUBLIC_ENDPOINTS = frozenset(
    {
        "operations.Health",  # /healthz
        "operations.Ready",  # /readyz
        "operations.Metrics",  # /metrics
        "api-docs.openapi_json",  # /openapi.json
        "api-docs.openapi_swagger_ui",  # /docs
        "docs_with_slash",  # /docs/
        "swagger_assets",  # /docs/assets/...
        "static",  # Flask's static files
        "web.sign_in",  # the sign-in page and its POST (CSRF-protected, rate limited)
        "fhir_read.metadata",  # /fhir/r4/metadata: the FHIR CapabilityStatement
    }
)
_ROLES_ATTRIBUTE = "_labinterp_roles"
_PAGE_ATTRIBUTE = "_labinterp_page"  # set by @page_roles: signed in by session, not token
_ACCESS = "labinterp.access"  # app.extensions key: (endpoint, method) -> roles allowed
_PAGES = "labinterp.pages"  # app.extensions key: the endpoints signed in by session
SESSION_USER = "user_id"  # the session key naming the signed-in user


class TokenCache:
    """Actors of tokens seen lately, by the token's hash, for a few seconds: a request does
    not look its token up in the database each time. A revoked token is refused within
    ``seconds``; an expiring one never outlives its expiry. Unknown tokens are not kept."""

    MAX_ENTRIES = 10_000

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Actor]] = {}

    def get(self, digest: str) -> Actor | None:
        entry = self._entries.get(digest)
        if entry is None or time.monotonic() >= entry[0]:
            return None
        return entry[1]

    def put(self, digest: str, actor: Actor) -> None:
        if self.seconds <= 0:
            return
        until = time.monotonic() + self.seconds
        expires = actor.expires_at
        if expires is not None:
            until = min(
                until, time.monotonic() + (expires - dt.datetime.now(dt.UTC)).total_seconds()
            )
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[digest] = (until, actor)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def token_cache(app: Flask | None = None) -> TokenCache:
    """The app's token cache (the current app's by default)."""
    app = app or cast(Flask, current_app)
    cache: TokenCache | None = app.extensions.get(_CACHE)
    if cache is None:
        with _CACHE_LOCK:
            cache = app.extensions.get(_CACHE)
            if cache is None:
                runtime_: Any = app.extensions["labinterp"]
                cache = TokenCache(runtime_.settings.token_cache_seconds)
                app.extensions[_CACHE] = cache
    return cache


_CACHE = "labinterp.token_cache"
_CACHE_LOCK = threading.Lock()
# environ key: the request's rate-limit count (a Quota, None, or the 429 Problem), when the
# route in front of Flask (api/fastpost.py) counted it before handing the request on
COUNTED = "labinterp.counted"


def authenticate() -> Actor:
    """The actor behind the request's bearer token, else 401. An address with too many
    failed authentications this minute is answered 429 before its token is looked up."""
    address = request.remote_addr or "-"
    limiter.refuse_if_blocked(address)
    try:
        return actor_of_bearer(request.headers.get("Authorization", ""), token_cache(), db)
    except Problem as problem:
        if problem.status == 401:
            limiter.failed_login(address)  # 429 instead, beyond the limit
        raise


def actor_of_bearer(header: str, cache: TokenCache, session: Callable[[], Session]) -> Actor:
    """The actor behind an ``Authorization: Bearer`` header: from ``cache``, else looked up
    in ``session()`` and cached. 401 (a Problem) for no token, another scheme, or a token
    that is unknown, revoked, expired or a disabled user's."""
    scheme, _, token = header.partition(" ")
    if not header:
        raise Problem(401, "no API token: send 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "the Authorization header must be 'Bearer <token>'", headers=_CHALLENGE)
    token = token.strip()
    digest = hash_token(token)
    actor = cache.get(digest)
    if actor is None:
        try:
            actor = resolve_token(session(), token)
        except TokenRefused as refused:
            raise Problem(401, str(refused), headers=_CHALLENGE) from None
        cache.put(digest, actor)
    return actor


def admit(allowed: Collection[str]) -> Actor:
    """The request's actor if its role is among ``allowed``: 401 without a valid token, 403
    for another role. The token is looked up and counted against its rate limit once per
    request, however often this is asked."""
    actor: Actor | None = g.get("actor")
    if actor is None:
        actor = authenticate().at_address(request.remote_addr)
        g.actor = actor
    if actor.role not in allowed:
        if not allowed:
            raise Problem(403, "no role may do this")
        raise Problem(
            403,
            f"{_article(actor.role)} {actor.role} token may not do this; "
            f"it needs the role {' or '.join(sorted(allowed))}",
        )
    if "rate_limit" not in g:
        g.rate_limit = _counted(str(actor.token_id))  # RateLimit-* headers (ratelimit.py)
    return actor


def _counted(key: str) -> Any:
    """Count the request against the token's limit, unless the route in front of Flask
    already did (it hands the count on in the environ: a request is counted once)."""
    if COUNTED not in request.environ:
        return limiter.hit(key)
    counted = request.environ.pop(COUNTED)
    if isinstance(counted, Problem):
        raise counted
    return counted


def roles(*allowed: str) -> Callable[[F], F]:
    """Only these roles may call the view; authentication and 403 come before body parsing."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            admit(allowed)
            return view(*args, **kwargs)

        setattr(wrapper, _ROLES_ATTRIBUTE, frozenset(allowed))
        document_roles(wrapper, allowed)  # bearer token; 401, 403, 429 in /openapi.json
        return cast(F, wrapper)

    return decorate


def current_actor() -> Actor:
    return cast(Actor, g.actor)


# --- pages: signed in with a session cookie ---------------------------------------------------


class SignInRequired(Exception):
    """No signed-in user behind this page request: the web blueprint redirects to sign-in.
    ``ended`` when there was a session, and its user is disabled or gone."""

    def __init__(self, ended: bool = False) -> None:
        super().__init__("sign in to see this page")
        self.ended = ended


class PageForbidden(Exception):
    """A signed-in user whose role may not see this page (403)."""

    def __init__(self, actor: Actor, allowed: Collection[str]) -> None:
        needs = " or ".join(sorted(allowed)) or "no role"
        super().__init__(f"This page is for the role {needs}; you are signed in as {actor.role}.")
        self.actor = actor


def start_session(actor: Actor) -> None:
    """Sign the browser in as ``actor``'s user: a fresh session (nothing carried over from
    before sign-in, the CSRF token included), kept for PERMANENT_SESSION_LIFETIME."""
    session.clear()
    session[SESSION_USER] = str(actor.user_id)
    session.permanent = True


def end_session() -> None:
    session.clear()


def admit_page(allowed: Collection[str]) -> Actor:
    """The signed-in user's actor if their role is among ``allowed``. The user is read again
    on every request: a disabled user's open session stops working at its next request, and
    clinic assignments apply at once."""
    actor: Actor | None = g.get("actor")
    if actor is None:
        user_id = session.get(SESSION_USER)
        if not user_id:
            raise SignInRequired()
        try:
            user = session_user(db(), uuid.UUID(str(user_id)))
        except ValueError:
            user = None
        if user is None:
            session.clear()
            raise SignInRequired(ended=True)
        actor = user_actor(user, request.remote_addr)
        g.actor = actor
    if actor.role not in allowed:
        raise PageForbidden(actor, allowed)
    if "rate_limit" not in g:
        g.rate_limit = limiter.hit(f"user:{actor.user_id}")
    return actor


def page_roles(*allowed: str) -> Callable[[F], F]:
    """Only signed-in users of these roles may see the page (the same access table as
    ``@roles``; the gate signs them in from the session cookie)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            admit_page(allowed)
            return view(*args, **kwargs)

        setattr(wrapper, _ROLES_ATTRIBUTE, frozenset(allowed))
        setattr(wrapper, _PAGE_ATTRIBUTE, True)
        return cast(F, wrapper)

    return decorate


def page_endpoints(app: Flask) -> frozenset[str]:
    """The endpoints whose views are pages (``@page_roles``): signed in by session."""
    return frozenset(
        endpoint
        for endpoint, view in app.view_functions.items()
        if getattr(view, _PAGE_ATTRIBUTE, False)
    )


def _article(word: str) -> str:
    return "an" if word[:1] in ("a", "e", "i", "o", "u") else "a"


# --- deny by default -------------------------------------------------------------------------


def _declared_roles(view: Callable[..., Any], method: str) -> frozenset[str] | None:
    """The roles ``@roles`` declared for this method of the view (None: none declared)."""
    view_class = getattr(view, "view_class", None)
    if view_class is None:  # a plain function view
        return getattr(view, _ROLES_ATTRIBUTE, None)
    handler = getattr(view_class, method.lower(), None)
    if handler is None and method == "HEAD":  # MethodView answers HEAD with get
        handler = getattr(view_class, "get", None)
    return None if handler is None else getattr(handler, _ROLES_ATTRIBUTE, None)


def access_table(app: Flask) -> dict[tuple[str, str], frozenset[str]]:
    """(endpoint, method) -> the roles that may call it, for every non-public endpoint.

    Raises RuntimeError naming every route that is neither public nor declares its roles:
    such a route would be public by accident.
    """
    table: dict[tuple[str, str], frozenset[str]] = {}
    undeclared: list[str] = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        view = app.view_functions[rule.endpoint]
        methods = sorted((rule.methods or set()) - {"OPTIONS"})
        for method in methods:
            declared = _declared_roles(view, method)
            if declared is None:
                undeclared.append(f"{method} {rule.rule} ({rule.endpoint})")
            else:
                table[(rule.endpoint, method)] = declared
        # OPTIONS (Flask answers it by itself) needs a token any of the methods accepts
        table[(rule.endpoint, "OPTIONS")] = frozenset().union(
            *(table.get((rule.endpoint, m), frozenset()) for m in methods)
        )
    if undeclared:
        raise RuntimeError(
            "every endpoint needs @roles(...) or a place in PUBLIC_ENDPOINTS "
            "(labinterp/api/auth.py); these have neither: " + "; ".join(undeclared)
        )
    return table


def install_access_control(app: Flask) -> None:
    """Refuse to start on an undeclared endpoint; gate every request to a non-public one.

    Call once every route is registered. A route added later is not in the table, and is
    refused to every role (401 without a token, 403 with one): deny by default.
    """
    app.extensions[_ACCESS] = access_table(app)
    app.extensions[_PAGES] = page_endpoints(app)

    @app.before_request
    def _gate() -> None:
        endpoint = request.endpoint
        if endpoint is None or endpoint in PUBLIC_ENDPOINTS:
            return  # no route matched (404, 405 follow), or anyone may call it
        table: dict[tuple[str, str], frozenset[str]] = app.extensions[_ACCESS]
        allowed = table.get((endpoint, request.method), frozenset())
        if endpoint in app.extensions[_PAGES]:
            admit_page(allowed)  # a page: the session cookie, never a token
        else:
            admit(allowed)
