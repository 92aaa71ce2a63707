"""Where the service-backed tests find Redis: LABINTERP_TEST_REDIS_URL as an operator writes it."""

from __future__ import annotations

import pytest

from tests.integration import redis_service
from tests.integration.redis_service import redis_test_url


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/11"),
        ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/11"),
        # a database index in the URL is the one the tests use (it was taken as a host
        # part before: redis://…/10/11, "DB index is out of range", reported as unreachable)
        ("redis://127.0.0.1:6379/10", "redis://127.0.0.1:6379/10"),
        ("redis://:secret@cache:6380/3/", "redis://:secret@cache:6380/3"),
        ("rediss://cache:6380?ssl_cert_reqs=none", "rediss://cache:6380/11?ssl_cert_reqs=none"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock?db=11"),
    ],
)
def test_the_redis_url_for_tests_keeps_a_database_index_it_names(given: str, used: str) -> None:
    assert redis_test_url(given) == used


def test_a_redis_url_with_a_database_index_is_used_as_given(monkeypatch) -> None:
    """LABINTERP_TEST_REDIS_URL=redis://host:port/10 runs the tests on database 10 (with a
    closed port: the skip names that URL and the connection error, nothing about the index)."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("LABINTERP_TEST_REDIS_URL", "redis://127.0.0.1:1/10")
    with pytest.raises(pytest.skip.Exception) as skipped:
        redis_service.require_redis()
    message = str(skipped.value)
    assert "redis://127.0.0.1:1/10 " in message and "/10/11" not in message
    assert "out of range" not in message


def test_a_password_in_the_redis_url_is_not_shown_in_the_skip(monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("LABINTERP_TEST_REDIS_URL", "redis://:s3cret@127.0.0.1:1/10")
    with pytest.raises(pytest.skip.Exception) as skipped:
        redis_service.require_redis()
    assert "s3cret" not in str(skipped.value)
