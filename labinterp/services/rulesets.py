"""Which ruleset is active. Published rulesets never change; activation is a setting."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol

from sqlalchemy.orm import Session

from labinterp.domain import Ruleset
from labinterp.models import Setting
from labinterp.services import audit
from labinterp.services.audit import Actor
from labinterp.services.errors import NotFound

ACTIVE_KEY = "active_ruleset"


def active_version(session: Session, default: str) -> str:
    setting = session.get(Setting, ACTIVE_KEY)
    return setting.value if setting is not None else default


def active_ruleset(session: Session, rulesets: dict[str, Ruleset], default: str) -> Ruleset:
    version = active_version(session, default)
    try:
        return rulesets[version]
    except KeyError:
        raise NotFound(f"active ruleset {version}") from None


class VersionCache(Protocol):
    def get(self) -> str | None: ...
    def put(self, version: str) -> None: ...


def cached_active_ruleset(
    session_factory: Callable[[], Session],
    cache: VersionCache,
    rulesets: dict[str, Ruleset],
    default: str,
) -> Ruleset:
    """The active ruleset, read from the database only when ``cache`` has forgotten it (every
    few seconds): the hot path of a POST does not read a setting that changes once a year."""
    version = cache.get()
    if version is None:
        with session_factory() as session:
            version = active_version(session, default)
        cache.put(version)
    try:
        return rulesets[version]
    except KeyError:
        raise NotFound(f"active ruleset {version}") from None


def activate(session: Session, actor: Actor, rulesets: dict[str, Ruleset], version: str) -> Ruleset:
    """Make ``version`` the ruleset new panels are interpreted with. One transaction: the
    setting and its audit event (``ruleset.activate``, with the version it replaced)."""
    if version not in rulesets:
        raise NotFound(f"ruleset {version}")
    setting = session.get(Setting, ACTIVE_KEY)
    now = dt.datetime.now(dt.UTC)
    previous = None if setting is None else setting.value  # None: LABINTERP_RULESET
    if setting is None:
        session.add(Setting(key=ACTIVE_KEY, value=version, updated_at=now))
    else:
        setting.value, setting.updated_at = version, now
    audit.record(
        session,
        actor,
        "ruleset.activate",
        detail={"version": version, "previous": previous},
        at=now,
    )
    session.commit()
    return rulesets[version]
