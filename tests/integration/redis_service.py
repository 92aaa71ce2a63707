"""A real Redis for the integration tests: a clear skip outside CI, required in CI."""

from __future__ import annotations

import os

import pytest

DEFAULT = "redis://127.0.0.1:6379"


def require_redis(db: int = 11) -> str:
    """A Redis URL on a database index the tests own (flushed first)."""
    import redis

    base = os.environ.get("LABINTERP_TEST_REDIS_URL", DEFAULT).rstrip("/")
    url = f"{base}/{db}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
        client.flushdb()
    except Exception as exc:
        message = f"Redis not reachable at {base} ({exc}): start it or set LABINTERP_TEST_REDIS_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url
