"""Configuration from the environment, each value with a default that works on a laptop."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB (API.md)
DEFAULT_RULESET = "2026.1"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:5000"
DEFAULT_ALERT_GIVE_UP_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Settings:
    """Everything the API, the worker and the CLI need to know about where things live."""

    instance_path: Path
    database_url: str
    broker_url: str
    secret_key: str
    max_body: int = DEFAULT_MAX_BODY
    default_ruleset: str = DEFAULT_RULESET
    rulesets_dir: Path | None = None
    # a panel still `queued` this long after it was last enqueued, and not waiting in the
    # broker's queue, is enqueued again; the sweeper looks every `sweep_every` seconds
    sweep_after_seconds: int = 60
    sweep_every: int = 15
    # critical-value alerts: the links they carry start with `public_url`; a webhook that
    # does not answer 2xx is tried again after `alert_retry_base_seconds`, doubling up to
    # `alert_retry_cap_seconds`, until `alert_give_up_seconds` after the alert was made
    public_url: str = DEFAULT_PUBLIC_URL
    alert_retry_base_seconds: int = 30
    alert_retry_cap_seconds: int = 3600
    alert_give_up_seconds: int = DEFAULT_ALERT_GIVE_UP_SECONDS
    # a panel whose interpretation was taken up this many times without success is `failed`
    max_attempts: int = 5
    # PostgreSQL aborts any statement running longer (0: no limit)
    statement_timeout_seconds: int = 10
    # a token's lookup is reused this long by each API process: a revoked or expired token
    # is refused within this many seconds (0: look it up on every request)
    token_cache_seconds: int = 5
    rate_limit_per_minute: int = 600
    # failed authentications per minute from one address before it is answered 429 (0: off)
    auth_failure_limit_per_minute: int = 20
    broker_transport_options: dict[str, Any] = field(default_factory=dict)
    # the review pages' session cookie is sent over HTTPS only (LABINTERP_SECURE_COOKIES;
    # default: on, except on the embedded default, which serves plain HTTP on a laptop)
    secure_cookies: bool = True
    # panels per re-processing chunk: one task, one transaction, one multi-row INSERT
    reprocess_chunk_size: int = 500

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


class ConfigError(ValueError):
    """A configuration variable has a value labinterp cannot use; the message names it."""


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {text!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, not {text!r}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    text = (env.get(name) or "").strip().lower()
    if text == "":
        return default
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1/true/yes/on or 0/false/no/off, not {text!r}")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    instance = Path(env.get("LABINTERP_INSTANCE", "instance")).resolve()
    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'labinterp.db'}"
    broker_url = env.get("CELERY_BROKER_URL") or "filesystem://"
    transport_options: dict[str, Any] = {}
    if broker_url.startswith("filesystem://"):
        # kombu's filesystem transport: one folder that every producer and consumer shares
        # (the host part means nothing to it; naming one keeps kombu from warning on every connect)
        broker_url = "filesystem://localhost/"
        folder = instance / "broker"
        transport_options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.1,
        }
    elif broker_url.startswith(("redis://", "rediss://")):
        # a Redis that stops answering raises after these seconds instead of holding the
        # caller forever (a broker behind a network partition)
        transport_options = {
            "visibility_timeout": 3600,
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
        }
    rulesets_dir = env.get("LABINTERP_RULESETS_DIR")
    return Settings(
        instance_path=instance,
        database_url=_normalise_database_url(database_url),
        broker_url=broker_url,
        # no secret is ever written to disk by code: without one, sessions last a process
        secret_key=env.get("LABINTERP_SECRET_KEY") or os.urandom(32).hex(),
        max_body=_whole(env, "LABINTERP_MAX_BODY", DEFAULT_MAX_BODY),
        default_ruleset=env.get("LABINTERP_RULESET", DEFAULT_RULESET),
        rulesets_dir=Path(rulesets_dir) if rulesets_dir else None,
        sweep_after_seconds=_whole(env, "LABINTERP_SWEEP_AFTER", 60),
        sweep_every=max(1, _whole(env, "LABINTERP_SWEEP_EVERY", 15)),
        public_url=(env.get("LABINTERP_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/"),
        alert_retry_base_seconds=max(1, _whole(env, "LABINTERP_ALERT_RETRY_BASE", 30)),
        alert_retry_cap_seconds=max(1, _whole(env, "LABINTERP_ALERT_RETRY_CAP", 3600)),
        # at least a minute: an alert not yet tried when its time is up is given up unsent
        alert_give_up_seconds=max(
            60, _whole(env, "LABINTERP_ALERT_GIVE_UP", DEFAULT_ALERT_GIVE_UP_SECONDS)
        ),
        max_attempts=max(1, _whole(env, "LABINTERP_MAX_ATTEMPTS", 5)),
        statement_timeout_seconds=_whole(env, "LABINTERP_STATEMENT_TIMEOUT", 10),
        token_cache_seconds=_whole(env, "LABINTERP_TOKEN_CACHE", 5),
        rate_limit_per_minute=_whole(env, "LABINTERP_RATE_LIMIT", 600),
        auth_failure_limit_per_minute=_whole(env, "LABINTERP_AUTH_FAILURE_LIMIT", 20),
        broker_transport_options=transport_options,
        secure_cookies=_flag(
            env, "LABINTERP_SECURE_COOKIES", not database_url.startswith("sqlite")
        ),
        reprocess_chunk_size=min(5000, max(1, _whole(env, "LABINTERP_REPROCESS_CHUNK", 500))),
    )


def _normalise_database_url(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
