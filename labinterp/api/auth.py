"""Bearer-token authentication, roles, and the per-token rate limit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import g, request

from labinterp.api.openapi import document_roles
from labinterp.api.problems import Problem
from labinterp.api.ratelimit import limiter
from labinterp.api.session import db
from labinterp.services.accounts import resolve_token
from labinterp.services.audit import Actor

F = TypeVar("F", bound=Callable[..., Any])
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="labinterp"'}


def authenticate() -> Actor:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Problem(401, "no API token: send 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "the Authorization header must be 'Bearer <token>'", headers=_CHALLENGE)
    actor = resolve_token(db(), token.strip())
    if actor is None:
        raise Problem(401, "unknown or revoked API token", headers=_CHALLENGE)
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
