"""API tokens over HTTP: an expired token is refused and says so; a token's last use is
recorded at most once a minute, without a write on every request; an address that keeps
failing to authenticate is answered 429 before its tokens are looked up."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, event, select, update

from labinterp.app import create_app
from labinterp.config import load_settings
from labinterp.db import upgrade_database
from labinterp.models import ApiToken
from labinterp.runtime import Runtime, build_runtime
from labinterp.services.accounts import create_clinic, create_token, hash_token
from tests.api.conftest import Tokens, assert_problem, auth
from tests.api.test_ratelimit import _fresh_window
from tests.integration.redis_service import require_redis

PANELS = "/api/v1/panels"


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends while the block runs."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many):  # type: ignore[no-untyped-def]
        sent.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _token_row(runtime: Runtime, token: str) -> ApiToken:
    with runtime.session_factory() as session:
        return session.scalars(
            select(ApiToken).where(ApiToken.token_hash == hash_token(token))
        ).one()


# --- expiry ----------------------------------------------------------------------------------


def test_an_expired_token_is_401_saying_expired_and_one_that_is_not_yet_works(
    client, runtime: Runtime, tokens: Tokens
) -> None:  # type: ignore[no-untyped-def]
    with runtime.session_factory() as session:
        soon = create_token(
            session,
            "clinic",
            ["north"],
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        ).token
    assert client.get(PANELS, headers=auth(soon)).status_code == 200
    with runtime.session_factory() as session:  # an hour later
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_token(soon))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
        session.commit()
    forget_cached_tokens(client)  # each process reads its tokens again within seconds
    response = client.get(PANELS, headers=auth(soon))
    assert assert_problem(response, 401)["detail"] == "expired API token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    unknown = assert_problem(client.get(PANELS, headers=auth("li_unknown")), 401)
    assert unknown["detail"] == "unknown or revoked API token"


def test_a_token_cannot_be_made_already_expired(runtime: Runtime, tokens: Tokens) -> None:
    from labinterp.services.errors import InvalidInput

    with runtime.session_factory() as session, pytest.raises(InvalidInput, match="future"):
        create_token(session, "admin", [], expires_at=dt.datetime.now(dt.UTC))


# --- last use --------------------------------------------------------------------------------


def forget_cached_tokens(client) -> None:  # type: ignore[no-untyped-def]
    """What LABINTERP_TOKEN_CACHE seconds do to this API process: it forgets its tokens."""
    from labinterp.api.auth import token_cache

    with client.application.app_context():
        token_cache().clear()


def test_an_expiring_token_is_never_served_from_the_cache_past_its_expiry(
    client, runtime: Runtime, tokens: Tokens
) -> None:  # type: ignore[no-untyped-def]
    with runtime.session_factory() as session:
        brief = create_token(
            session,
            "clinic",
            ["north"],
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
        ).token
    assert client.get(PANELS, headers=auth(brief)).status_code == 200  # cached for < 1 s
    time.sleep(1.1)
    response = client.get(PANELS, headers=auth(brief))
    assert assert_problem(response, 401)["detail"] == "expired API token"


def test_last_use_is_written_once_a_minute_and_a_request_otherwise_only_reads_its_token(
    client, runtime: Runtime, tokens: Tokens
) -> None:  # type: ignore[no-untyped-def]
    assert _token_row(runtime, tokens.clinic).last_used_at is None
    with statements(runtime.engine) as first:
        assert client.get(PANELS, headers=auth(tokens.clinic)).status_code == 200
    used = _token_row(runtime, tokens.clinic).last_used_at
    assert used is not None and dt.datetime.now(dt.UTC) - used < dt.timedelta(seconds=10)
    token_statements = [s for s in first if "api_tokens" in s]
    assert len(token_statements) == 2 and token_statements[1].startswith("UPDATE api_tokens")
    assert "last_used_at IS NULL OR api_tokens.last_used_at <" in token_statements[1]

    with statements(runtime.engine) as cached:  # within seconds: no statement at all
        for _ in range(3):
            assert client.get(PANELS, headers=auth(tokens.clinic)).status_code == 200
    assert [s for s in cached if "api_tokens" in s] == []
    with statements(runtime.engine) as again:  # within the minute: one read, no write
        for _ in range(3):
            forget_cached_tokens(client)
            assert client.get(PANELS, headers=auth(tokens.clinic)).status_code == 200
    token_statements = [s for s in again if "api_tokens" in s]
    assert len(token_statements) == 3, token_statements  # one SELECT per lookup
    assert all(s.startswith("SELECT") for s in token_statements), token_statements
    assert _token_row(runtime, tokens.clinic).last_used_at == used

    with runtime.session_factory() as session:  # a minute and a second later
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_token(tokens.clinic))
            .values(last_used_at=used - dt.timedelta(seconds=61))
        )
        session.commit()
    forget_cached_tokens(client)
    with statements(runtime.engine) as later:
        assert client.get(PANELS, headers=auth(tokens.clinic)).status_code == 200
    assert sum(s.startswith("UPDATE api_tokens") for s in later) == 1
    assert _token_row(runtime, tokens.clinic).last_used_at > used  # type: ignore[operator]


# --- failed authentications per address ------------------------------------------------------

LIMIT = 5


def _apps(tmp_path: Path, count: int = 1, **env: str) -> tuple[list[Flask], Runtime, str]:
    """``count`` apps (API processes) over one instance folder, the failure limit LIMIT, and
    a clinic token."""
    settings = load_settings(
        {
            "LABINTERP_INSTANCE": str(tmp_path / "instance"),
            "LABINTERP_RATE_LIMIT": "0",
            "LABINTERP_AUTH_FAILURE_LIMIT": str(LIMIT),
            **env,
        }
    )
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.database_url)
    runtime = build_runtime(settings)
    with runtime.session_factory() as session:
        create_clinic(session, "north")
        token = create_token(session, "clinic", ["north"]).token
    apps = [create_app(runtime=build_runtime(settings)) for _ in range(count)]
    return apps, runtime, token


def test_an_address_that_keeps_failing_is_429_before_any_token_lookup(tmp_path: Path) -> None:
    (app,), _, token = _apps(tmp_path)
    client = app.test_client()
    _fresh_window()
    for _ in range(LIMIT):
        assert_problem(client.get(PANELS, headers=auth("li_guess")), 401)
    engine = app.extensions["labinterp"].engine
    with statements(engine) as sent:
        refused = client.get(PANELS, headers=auth(token))  # even a good token, this minute
    body = assert_problem(refused, 429)
    assert "failed authentications" in body["detail"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["Cache-Control"] == "no-store"
    assert sent == [], "a refused address had its token looked up"
    assert_problem(client.get(PANELS), 429)  # without a token too
    assert client.get("/healthz").status_code == 200  # the public endpoints stay open
    other = {"REMOTE_ADDR": "192.0.2.7"}  # another address is not affected
    assert client.get(PANELS, headers=auth(token), environ_base=other).status_code == 200


def test_api_processes_share_the_count_of_failures(tmp_path: Path) -> None:
    """Two apps over one instance folder (two gunicorn workers): the failures seen by each
    add up, and a process that has not refused the address yet refuses it at its next
    failure."""
    (first, second), _, token = _apps(tmp_path, count=2)
    one, two = first.test_client(), second.test_client()
    _fresh_window()
    for n in range(LIMIT):
        assert_problem((one, two)[n % 2].get(PANELS, headers=auth("li_guess")), 401)
    assert_problem(two.get(PANELS, headers=auth("li_guess")), 429)  # the sixth failure
    assert_problem(one.get(PANELS, headers=auth(token)), 429)
    assert_problem(two.get(PANELS, headers=auth(token)), 429)


def test_the_failure_limit_can_be_switched_off(tmp_path: Path) -> None:
    (app,), _, token = _apps(tmp_path, LABINTERP_AUTH_FAILURE_LIMIT="0")
    client = app.test_client()
    for _ in range(3 * LIMIT):
        assert_problem(client.get(PANELS, headers=auth("li_guess")), 401)
    assert client.get(PANELS, headers=auth(token)).status_code == 200


@pytest.mark.redis
def test_failures_are_counted_in_redis_when_the_broker_is_redis(tmp_path: Path) -> None:
    url = require_redis()
    (first, second), _, token = _apps(tmp_path, count=2, CELERY_BROKER_URL=url)
    one, two = first.test_client(), second.test_client()
    _fresh_window()
    for n in range(LIMIT):
        assert_problem((one, two)[n % 2].get(PANELS, headers=auth("li_guess")), 401)
    assert_problem(two.get(PANELS, headers=auth("li_guess")), 429)
    assert_problem(one.get(PANELS, headers=auth(token)), 429)
    assert not (tmp_path / "instance" / "ratelimit.db").exists()  # Redis counted
