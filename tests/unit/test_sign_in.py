"""Signing in with an email and password (services/users.py), on a real SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from labinterp.config import load_settings
from labinterp.db import upgrade_database
from labinterp.models import AuditEvent
from labinterp.runtime import build_runtime
from labinterp.services.accounts import create_clinic
from labinterp.services.errors import SignInRefused
from labinterp.services.users import create_user, disable_user, session_user, sign_in

PASSWORD = "correct horse battery staple"


@pytest.fixture
def session(tmp_path: Path) -> Session:
    settings = load_settings({"LABINTERP_INSTANCE": str(tmp_path / "instance")})
    settings.instance_path.mkdir(parents=True)
    upgrade_database(settings.database_url)
    session = build_runtime(settings).session_factory()
    create_clinic(session, "north")
    create_user(session, "ada@example.org", PASSWORD, "clinician", ["north"])
    return session


def _actions(session: Session) -> list[tuple[str, str, str | None]]:
    return [
        (e.action, e.actor, e.address)
        for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        if e.action.startswith("user.sign_in")
    ]


def test_the_right_password_signs_in_as_the_clinician_of_their_clinics(session: Session) -> None:
    actor = sign_in(session, " Ada@Example.org ", PASSWORD, "10.0.0.7")
    assert actor.role == "clinician" and actor.name == "user:ada@example.org"
    assert set(actor.clinic_names.values()) == {"north"} and actor.user_id is not None
    assert _actions(session) == [("user.sign_in", "user:ada@example.org", "10.0.0.7")]


@pytest.mark.parametrize(
    ("email", "password", "reason"),
    [
        ("ada@example.org", "wrong password here", "wrong password"),
        ("nobody@example.org", PASSWORD, "unknown email"),
    ],
)
def test_a_wrong_password_or_unknown_email_is_refused_alike_and_audited(
    session: Session, email: str, password: str, reason: str
) -> None:
    with pytest.raises(SignInRefused) as refused:
        sign_in(session, email, password, "10.0.0.7")
    assert str(refused.value) == "the email or password is not right, or the account is disabled"
    [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.sign_in_failed"))
    assert event.detail == {"reason": reason} and event.address == "10.0.0.7"
    assert password not in str(event.detail)


def test_a_disabled_user_cannot_sign_in_and_their_session_ends(session: Session) -> None:
    actor = sign_in(session, "ada@example.org", PASSWORD, None)
    assert actor.user_id is not None and session_user(session, actor.user_id) is not None
    disable_user(session, "ada@example.org")
    assert session_user(session, actor.user_id) is None
    with pytest.raises(SignInRefused):
        sign_in(session, "ada@example.org", PASSWORD, None)
