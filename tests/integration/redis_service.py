"""A real Redis for the integration tests: a clear skip outside CI, required in CI.

``LABINTERP_TEST_REDIS_URL`` names the server, with or without a database index
(``redis://127.0.0.1:6379`` or ``redis://127.0.0.1:6379/10``); without one the tests use
database 11. The tests flush that database: give them one nothing else uses.
"""

from __future__ import annotations

import os
import re

import pytest

DEFAULT = "redis://127.0.0.1:6379"
DEFAULT_DB = 11


def redis_test_url(base: str, db: int = DEFAULT_DB) -> str:
    """``base`` with a database index: its own if it names one, else ``db``."""
    base = base.strip()
    scheme, sep, rest = base.partition("://")
    if not sep:
        raise ValueError(f"LABINTERP_TEST_REDIS_URL must be a redis:// URL, not {base!r}")
    rest, mark, query = rest.partition("?")
    if scheme == "unix":  # unix:///path/to/redis.sock?db=N
        return base if "db=" in query else f"{base}{'&' if mark else '?'}db={db}"
    location, _, index = rest.partition("/")
    index = index.rstrip("/")
    if index and not index.isdigit():
        raise ValueError(
            f"LABINTERP_TEST_REDIS_URL: the database index must be a number, not {index!r}"
        )
    return f"{scheme}://{location}/{index or db}{mark}{query}"


def require_redis(db: int = DEFAULT_DB) -> str:
    """A Redis URL on a database index the tests own (flushed first)."""
    import redis

    base = os.environ.get("LABINTERP_TEST_REDIS_URL") or DEFAULT
    shown = re.sub(r"://[^@/]*@", "://***@", base)  # no password in a skip message
    try:
        url = redis_test_url(base, db)
        shown = re.sub(r"://[^@/]*@", "://***@", url)
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
        client.flushdb()
    except Exception as exc:
        message = (
            f"Redis not reachable at {shown} ({exc}): start it or set LABINTERP_TEST_REDIS_URL"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url
