"""Signing in and out of the review pages: audited, rate limited, and a disabled user's
session ends at its next request."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from labinterp.app import create_app
from labinterp.services.users import disable_user
from tests.web.conftest import (
    NORTH_CLINICIAN,
    PASSWORD,
    World,
    csrf_token,
    events,
    make_runtime,
    populate,
    sign_in,
)


def test_a_clinician_signs_in_with_email_and_password_and_the_sign_in_is_audited(
    world: World, client: FlaskClient
) -> None:
    response = sign_in(client, "  Ana@North.example ")
    assert response.status_code == 302 and response.headers["Location"] == "/review"
    assert client.get("/review").status_code == 200
    [event] = events(world, "user.sign_in")
    assert event.actor == f"user:{NORTH_CLINICIAN}" and event.address == "127.0.0.1"


def test_a_wrong_password_is_refused_on_the_page_audited_and_signs_nobody_in(
    world: World, client: FlaskClient
) -> None:
    response = sign_in(client, NORTH_CLINICIAN, "not the password")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "The email or the password is not right" in page
    assert f'value="{NORTH_CLINICIAN}"' in page  # the email is kept, never the password
    assert "not the password" not in page
    [event] = events(world, "user.sign_in_failed")
    assert event.detail == {"reason": "wrong password"}
    assert events(world, "user.sign_in") == []
    assert client.get("/review").status_code == 302


def test_an_unknown_email_reads_exactly_like_a_wrong_password(client: FlaskClient) -> None:
    """The page does not tell which emails have an account."""

    def error(response: Any) -> str:
        found = re.search(r'id="sign-in-error">([^<]*)<', response.get_data(as_text=True))
        assert found
        return found.group(1)

    unknown = error(sign_in(client, "nobody@north.example"))
    assert unknown == error(sign_in(client, NORTH_CLINICIAN, "not the password"))
    assert "The email or the password is not right" in unknown


def test_a_disabled_user_cannot_sign_in(world: World, client: FlaskClient) -> None:
    with world.runtime.session_factory() as session:
        disable_user(session, NORTH_CLINICIAN)
    response = sign_in(client, NORTH_CLINICIAN)
    assert response.status_code == 200 and "account is disabled" in response.get_data(True)
    assert events(world, "user.sign_in_failed")[-1].detail == {"reason": "disabled"}


def test_an_open_session_stops_working_once_its_user_is_disabled(
    world: World, clinician: FlaskClient
) -> None:
    assert clinician.get("/review").status_code == 200
    with world.runtime.session_factory() as session:
        disable_user(session, NORTH_CLINICIAN)
    response = clinician.get("/review")
    assert response.status_code == 302 and response.headers["Location"].startswith("/sign-in")
    assert "Your session has ended" in clinician.get("/sign-in").get_data(as_text=True)
    # the session is gone, not merely refused once
    assert clinician.get("/review").status_code == 302


def test_sign_in_returns_to_the_page_asked_for_and_never_to_another_site(
    world: World, client: FlaskClient
) -> None:
    asked = client.get("/review?status=all")
    assert asked.status_code == 302
    assert asked.headers["Location"] == "/sign-in?next=/review?status%3Dall"
    for target, lands in (
        ("/review?status=all", "/review?status=all"),
        ("https://evil.example/", "/review"),
        ("//evil.example/", "/review"),
        ("/\\evil.example", "/review"),
    ):
        fresh = world.app.test_client()
        response = fresh.post(
            "/sign-in",
            data={
                "email": NORTH_CLINICIAN,
                "password": PASSWORD,
                "next": target,
                "csrf_token": csrf_token(fresh),
            },
        )
        assert response.headers["Location"] == lands, target


def test_signing_out_ends_the_session_and_is_audited(clinician: FlaskClient, world: World) -> None:
    token = csrf_token(clinician, "/review")
    response = clinician.post("/sign-out", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/sign-in"
    assert "You are signed out" in clinician.get("/sign-in").get_data(as_text=True)
    assert clinician.get("/review").status_code == 302
    [event] = events(world, "user.sign_out")
    assert event.actor == f"user:{NORTH_CLINICIAN}" and event.address == "127.0.0.1"


def test_failed_sign_ins_beyond_the_limit_are_answered_429_before_the_password_is_checked(
    tmp_path: Path,
) -> None:
    """The failed-login limit of the API's tokens (LABINTERP_AUTH_FAILURE_LIMIT) counts
    refused sign-ins too: beyond it, even the right password waits out the minute."""
    runtime = make_runtime(tmp_path, LABINTERP_AUTH_FAILURE_LIMIT="3")
    populate(runtime)
    client = create_app(runtime=runtime).test_client()
    answers = [sign_in(client, NORTH_CLINICIAN, "wrong password!").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    refused = sign_in(client, NORTH_CLINICIAN)
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert "failed authentications" in refused.get_data(as_text=True)
    runtime.engine.dispose()


def test_an_empty_form_is_asked_again_without_a_sign_in_attempt(
    world: World, client: FlaskClient
) -> None:
    response = client.post("/sign-in", data={"email": "", "csrf_token": csrf_token(client)})
    assert response.status_code == 400
    assert "Enter your email and your password" in response.get_data(as_text=True)
    assert events(world, "user.sign_in_failed") == []
