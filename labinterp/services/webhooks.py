"""A clinic's webhook for critical-value alerts: set, shown and removed by an admin.

Each change is audited (`webhook.set`, `webhook.remove`) in its own transaction. The secret is
never shown, logged nor audited once set: the clinic keeps its own copy to verify signatures.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from labinterp.models import ClinicWebhook
from labinterp.services import audit
from labinterp.services.accounts import find_clinic
from labinterp.services.audit import Actor
from labinterp.services.errors import InvalidInput, NotFound

MAX_URL_LENGTH = 2000
# an HMAC key a person could guess protects nothing; `openssl rand -hex 32` gives 64
MIN_SECRET_LENGTH = 16
_UNPRINTABLE = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class Webhook:
    """A clinic's webhook as it may be shown: never with its secret."""

    clinic: str
    url: str
    updated_at: dt.datetime
    updated_by: str | None


def check_url(url: str) -> str:
    """The URL, if alerts can be POSTed to it (http or https, a host, nothing else odd);
    else :class:`InvalidInput` saying what is wrong with it."""
    url = url.strip()
    problem = _url_problem(url)
    if problem:
        raise InvalidInput({"url": [problem]})
    return url


def _url_problem(url: str) -> str | None:
    if not url:
        return "a webhook needs a URL"
    if len(url) > MAX_URL_LENGTH:
        return f"the URL is longer than {MAX_URL_LENGTH} characters"
    if _UNPRINTABLE.search(url):
        return "the URL holds a space or a control character"
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return f"the URL must start with https:// or http://, not {url[:40]!r}"
    if not parts.hostname:
        return "the URL names no host"
    if parts.username is not None or parts.password is not None:
        return "the URL must not hold a user name or password (alerts are signed instead)"
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is asked for it
    except ValueError:
        return "the URL's port is not a number from 0 to 65535"
    return None


def check_secret(secret: str) -> str:
    secret = secret.strip()
    if not secret:
        raise InvalidInput({"secret": ["the secret is empty"]})
    if len(secret) < MIN_SECRET_LENGTH:
        raise InvalidInput(
            {
                "secret": [
                    f"the secret must be at least {MIN_SECRET_LENGTH} characters "
                    "(`openssl rand -hex 32` makes a good one)"
                ]
            }
        )
    return secret


def set_webhook(
    session: Session,
    clinic_name: str,
    url: str,
    secret: str | None,
    actor: Actor,
    now: dt.datetime | None = None,
) -> Webhook:
    """Send the clinic's critical-value alerts to ``url``, signed with ``secret`` (None keeps
    the secret it has; a new webhook needs one). One transaction, audited: the URL's origin,
    never the secret nor the rest of the URL (which may carry a token of its own)."""
    url = check_url(url)
    secret = None if secret is None else check_secret(secret)
    clinic = find_clinic(session, clinic_name)
    now = now or dt.datetime.now(dt.UTC)
    webhook = session.get(ClinicWebhook, clinic.id)
    if webhook is None:
        if secret is None:
            raise InvalidInput({"secret": ["a new webhook needs a secret (--secret-stdin)"]})
        webhook = ClinicWebhook(clinic_id=clinic.id, created_at=now)
        session.add(webhook)
    webhook.url = url
    if secret is not None:
        webhook.secret = secret
    webhook.updated_at = now
    webhook.updated_by = actor.name
    parts = urlsplit(url)
    audit.record(
        session,
        actor,
        "webhook.set",
        clinic_id=clinic.id,
        detail={"origin": f"{parts.scheme}://{parts.netloc}", "secret_changed": secret is not None},
        at=now,
    )
    session.commit()
    return Webhook(clinic.name, url, now, actor.name)


def remove_webhook(session: Session, clinic_name: str, actor: Actor) -> None:
    """Stop sending the clinic alerts (those not yet delivered are given up when next tried).
    One transaction, audited; :class:`NotFound` when it has no webhook."""
    clinic = find_clinic(session, clinic_name)
    webhook = session.get(ClinicWebhook, clinic.id)
    if webhook is None:
        raise NotFound(f"a webhook of clinic {clinic.name!r}")
    session.delete(webhook)
    audit.record(session, actor, "webhook.remove", clinic_id=clinic.id)
    session.commit()


def show_webhook(session: Session, clinic_name: str) -> Webhook | None:
    clinic = find_clinic(session, clinic_name)
    webhook = session.get(ClinicWebhook, clinic.id)
    if webhook is None:
        return None
    return Webhook(clinic.name, webhook.url, webhook.updated_at, webhook.updated_by)
