"""Bearer-token authentication, roles, and the per-token rate limit."""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, g, request

from labinterp.api.openapi import document_roles
from labinterp.api.problems import Problem
from labinterp.api.ratelimit import limiter
from labinterp.api.session import db, runtime
from labinterp.services.accounts import hash_token, resolve_token
from labinterp.services.audit import Actor

F = TypeVar("F", bound=Callable[..., Any])
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="labinterp"'}


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
        expires = getattr(actor, "expires_at", None)
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


def token_cache() -> TokenCache:
    cache: TokenCache | None = current_app.extensions.get(_CACHE)
    if cache is None:
        cache = TokenCache(runtime().settings.token_cache_seconds)
        current_app.extensions[_CACHE] = cache
    return cache


_CACHE = "labinterp.token_cache"


def authenticate() -> Actor:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Problem(401, "no API token: send 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "the Authorization header must be 'Bearer <token>'", headers=_CHALLENGE)
    token = token.strip()
    cache = token_cache()
    digest = hash_token(token)
    actor = cache.get(digest)
    if actor is None:
        actor = resolve_token(db(), token)
        if actor is None:
            raise Problem(401, "unknown or revoked API token", headers=_CHALLENGE)
        cache.put(digest, actor)
    return actor


def roles(*allowed: str) -> Callable[[F], F]:
    """Only these roles may call the view; authentication and 403 come before body parsing."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            actor = authenticate()
            if actor.role not in allowed:
                raise Problem(
                    403,
                    f"{_article(actor.role)} {actor.role} token may not do this; "
                    f"it needs the role {' or '.join(allowed)}",
                )
            g.rate_limit = limiter.hit(str(actor.token_id))  # RateLimit-* headers (ratelimit.py)
            g.actor = actor
            return view(*args, **kwargs)

        document_roles(wrapper, allowed)  # bearer token; 401, 403, 429 in /openapi.json
        return cast(F, wrapper)

    return decorate


def current_actor() -> Actor:
    return cast(Actor, g.actor)


def _article(word: str) -> str:
    return "an" if word[:1] in ("a", "e", "i", "o", "u") else "a"
