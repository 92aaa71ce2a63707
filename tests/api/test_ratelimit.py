"""The per-token rate limit is one budget for every API process, and it is announced.

Two apps built over one instance folder stand in for the two gunicorn workers of
``labinterp serve``: each has its own Limiter, so only a shared counter store keeps the
budget at LABINTERP_RATE_LIMIT.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from flask import Flask

from labinterp.api.ratelimit import STORE_FILE, Limiter
from labinterp.app import create_app
from labinterp.config import load_settings
from labinterp.db import upgrade_database
from labinterp.runtime import build_runtime
from labinterp.services.accounts import create_clinic, create_token
from tests.api.conftest import auth
from tests.integration.redis_service import require_redis

PANELS = "/api/v1/panels"
LIMIT = 5


def _workers(instance: Path, count: int = 2, **env: str) -> tuple[list[Flask], str]:
    """``count`` apps over one instance folder (each with its own runtime and limiter) and a
    clinic token."""
    settings = load_settings(
        {
            "LABINTERP_INSTANCE": str(instance),
            "LABINTERP_SECRET_KEY": "test",
            "LABINTERP_RATE_LIMIT": str(LIMIT),
            **env,
        }
    )
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.database_url)
    apps = [create_app(runtime=build_runtime(settings)) for _ in range(count)]
    with build_runtime(settings).session_factory() as session:
        create_clinic(session, "north")
        token = create_token(session, "clinic", ["north"]).token
    return apps, token


def _fresh_window() -> None:
    """Start well inside a minute, so a test's requests all fall into one fixed window."""
    left = 60 - time.time() % 60
    if left < 5:
        time.sleep(left + 0.05)


def _alternate(apps: list[Flask], token: str, requests: int) -> list[tuple[int, dict[str, str]]]:
    clients = [app.test_client() for app in apps]
    answers = []
    for n in range(requests):
        response = clients[n % len(clients)].get(PANELS, headers=auth(token))
        answers.append((response.status_code, dict(response.headers)))
    return answers


def test_two_workers_share_one_budget(tmp_path: Path) -> None:
    apps, token = _workers(tmp_path / "instance")
    assert (
        apps[0].extensions["labinterp.ratelimit"] is not apps[1].extensions["labinterp.ratelimit"]
    )
    _fresh_window()
    answers = _alternate(apps, token, 2 * LIMIT + 2)
    assert [status for status, _ in answers] == [200] * LIMIT + [429] * (LIMIT + 2)
    for _, headers in answers[LIMIT:]:
        assert 0 < int(headers["Retry-After"]) <= 60
        assert headers["RateLimit-Remaining"] == "0"
    assert (tmp_path / "instance" / STORE_FILE).is_file()  # its own file, not the main database


def test_ratelimit_headers_count_down(tmp_path: Path) -> None:
    apps, token = _workers(tmp_path / "instance", count=1)
    client = apps[0].test_client()
    _fresh_window()
    remaining = []
    for _ in range(LIMIT):
        response = client.get(PANELS, headers=auth(token))
        assert response.status_code == 200
        assert response.headers["RateLimit-Limit"] == str(LIMIT)
        assert 0 < int(response.headers["RateLimit-Reset"]) <= 60
        assert "Retry-After" not in response.headers
        remaining.append(int(response.headers["RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    limited = client.get(PANELS, headers=auth(token))
    assert limited.status_code == 429
    assert limited.headers["RateLimit-Limit"] == str(LIMIT)
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert limited.headers["Retry-After"] == limited.headers["RateLimit-Reset"]
    # not counted, so not announced: no token, and the endpoints without a token
    assert "RateLimit-Limit" not in client.get(PANELS).headers
    assert "RateLimit-Limit" not in client.get("/healthz").headers


def test_no_limit_no_headers(tmp_path: Path) -> None:
    apps, token = _workers(tmp_path / "instance", count=1, LABINTERP_RATE_LIMIT="0")
    response = apps[0].test_client().get(PANELS, headers=auth(token))
    assert response.status_code == 200
    assert "RateLimit-Limit" not in response.headers
    assert not (tmp_path / "instance" / STORE_FILE).exists()


def test_a_failing_counter_store_falls_back_to_the_process_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    instance = tmp_path / "instance"
    (instance / STORE_FILE).mkdir(parents=True)  # a folder where the file should be: unopenable
    apps, token = _workers(instance, count=1)
    client = apps[0].test_client()
    _fresh_window()
    with caplog.at_level(logging.WARNING, logger="labinterp.api.ratelimit"):
        statuses = [client.get(PANELS, headers=auth(token)).status_code for _ in range(LIMIT + 1)]
    assert statuses == [200] * LIMIT + [429]
    outages = [r for r in caplog.records if r.name == "labinterp.api.ratelimit"]
    assert len(outages) == 1 and "failed" in outages[0].getMessage()


def test_sqlite_counter_is_shared_between_limiters(tmp_path: Path) -> None:
    """The store itself: two Limiters (two processes' worth) over one file count together,
    each key and each window apart."""
    first, second = (Limiter(10, None, tmp_path) for _ in range(2))
    assert first._store is not None and second._store is not None
    one, two = first._store, second._store
    assert [one.incr("a", 7), two.incr("a", 7), one.incr("a", 7)] == [1, 2, 3]
    assert two.incr("b", 7) == 1
    assert two.incr("a", 8) == 1
    assert one.incr("a", 9) == 1  # a new window sweeps the ones before the last
    with one._connection() as conn:
        windows = {w for (w,) in conn.execute('SELECT "window" FROM hits')}
    assert windows == {8, 9}


@pytest.mark.redis
def test_redis_workers_share_one_budget(tmp_path: Path) -> None:
    url = require_redis()
    apps, token = _workers(tmp_path / "instance", CELERY_BROKER_URL=url)
    _fresh_window()
    answers = _alternate(apps, token, 2 * LIMIT)
    assert [status for status, _ in answers] == [200] * LIMIT + [429] * LIMIT
    assert [h["RateLimit-Remaining"] for _, h in answers[:LIMIT]] == ["4", "3", "2", "1", "0"]
    assert all(0 < int(h["Retry-After"]) <= 60 for _, h in answers[LIMIT:])
    assert not (tmp_path / "instance" / STORE_FILE).exists()  # Redis counted, not the file
