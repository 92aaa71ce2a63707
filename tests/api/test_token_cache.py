"""Token lookups are reused for a few seconds by each API process: a revoked or expired token
is refused within LABINTERP_TOKEN_CACHE seconds, never later."""

from __future__ import annotations

import time
from pathlib import Path

from labinterp.services.accounts import list_tokens, revoke_token
from tests.api.conftest import auth, clinic_app


def test_a_revoked_token_is_refused_within_the_token_cache_time(tmp_path: Path) -> None:
    runtime, client, token = clinic_app(
        {
            "LABINTERP_INSTANCE": str(tmp_path),
            "LABINTERP_RATE_LIMIT": "0",
            "LABINTERP_TOKEN_CACHE": "1",
        }
    )
    assert client.get("/api/v1/panels", headers=auth(token)).status_code == 200
    with runtime.session_factory() as session:
        revoked = revoke_token(session, list_tokens(session)[0].id)
    started = time.monotonic()
    while True:  # judged by when each request was sent, so a slow machine cannot fail it
        sent = time.monotonic()
        if client.get("/api/v1/panels", headers=auth(token)).status_code != 200:
            break
        assert sent - started < 1.1, "a revoked token was still served after 1 s"
        time.sleep(0.05)
    assert client.get("/api/v1/panels", headers=auth(token)).status_code == 401
    assert revoked.revoked_at is not None


def test_without_the_cache_a_revoked_token_is_refused_at_once(tmp_path: Path) -> None:
    runtime, client, token = clinic_app(
        {
            "LABINTERP_INSTANCE": str(tmp_path),
            "LABINTERP_RATE_LIMIT": "0",
            "LABINTERP_TOKEN_CACHE": "0",
        }
    )
    assert client.get("/api/v1/panels", headers=auth(token)).status_code == 200
    with runtime.session_factory() as session:
        revoke_token(session, list_tokens(session)[0].id)
    assert client.get("/api/v1/panels", headers=auth(token)).status_code == 401
