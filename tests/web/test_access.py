"""The pages follow the API's role and clinic rules, from the same access table: no session
is a redirect to sign-in, another role is 403, another clinic's panel is 404 exactly like a
panel that does not exist."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient

from labinterp.api.auth import PUBLIC_ENDPOINTS, access_table, page_endpoints
from tests.web.conftest import ADMIN, CRITICAL_K, SOUTH_CLINICIAN, World, csrf_token, sign_in

PAGES = ["/", "/review", "/review?status=all", f"/review/panels/{uuid.uuid4()}"]


@pytest.fixture
def app_of(world: World) -> Flask:
    return world.app


@pytest.mark.parametrize("path", PAGES)
def test_without_a_session_every_page_redirects_to_sign_in_with_the_way_back(
    client: FlaskClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in?next=/")


def test_a_bearer_token_does_not_open_the_pages(world: World, client: FlaskClient) -> None:
    """Pages are signed in by session cookie only; the API's tokens are for the API."""
    response = client.get("/review", headers={"Authorization": f"Bearer {world.tokens['north']}"})
    assert response.status_code == 302


def test_a_post_without_a_session_redirects_to_sign_in_and_records_nothing(
    world: World, client: FlaskClient
) -> None:
    panel_id = world.post("K-1", CRITICAL_K)
    response = client.post(
        f"/review/panels/{panel_id}/reviews",
        data={"decision": "acknowledged", "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/sign-in"


def test_every_page_is_in_the_access_table_with_its_roles(app_of: Flask) -> None:
    """The pages' roles live where the API's do (api/auth.py): the queue, panel page and
    review are for clinicians; only the sign-in page is public."""
    table = access_table(app_of)
    pages = page_endpoints(app_of)
    assert {"web.queue", "web.panel", "web.review", "web.index", "web.sign_out"} <= pages
    assert table[("web.queue", "GET")] == {"clinician"}
    assert table[("web.panel", "GET")] == {"clinician"}
    assert table[("web.review", "POST")] == {"clinician"}
    assert "web.sign_in" in PUBLIC_ENDPOINTS and "web.sign_in" not in pages
    web_endpoints = {rule.endpoint for rule in app_of.url_map.iter_rules()} - {"static"}
    assert {e for e in web_endpoints if e.startswith("web.")} == pages | {"web.sign_in"}


def test_an_admin_is_signed_in_but_the_review_pages_are_403(
    world: World, client: FlaskClient
) -> None:
    panel_id = world.post("K-1", CRITICAL_K)
    assert sign_in(client, ADMIN).status_code == 302
    for path in ("/review", f"/review/panels/{panel_id}"):
        response = client.get(path)
        assert response.status_code == 403, path
        page = response.get_data(as_text=True)
        assert "for the role clinician" in page and "you are signed in as admin" in page
        assert "K-1" not in page


def test_another_clinics_panel_is_404_exactly_like_one_that_does_not_exist(
    world: World, client: FlaskClient
) -> None:
    north_panel = world.post("K-1", CRITICAL_K)
    sign_in(client, SOUTH_CLINICIAN)
    theirs = client.get(f"/review/panels/{north_panel}")
    missing = client.get(f"/review/panels/{uuid.uuid4()}")
    garbage = client.get("/review/panels/not-a-uuid")
    assert theirs.status_code == missing.status_code == garbage.status_code == 404
    assert theirs.get_data() == missing.get_data() == garbage.get_data()
    assert b"K-1" not in theirs.get_data() and b"P-K-1" not in theirs.get_data()


def test_another_clinics_panel_cannot_be_reviewed(world: World, client: FlaskClient) -> None:
    north_panel = world.post("K-1", CRITICAL_K)
    sign_in(client, SOUTH_CLINICIAN)
    response = client.post(
        f"/review/panels/{north_panel}/reviews",
        data={
            "decision": "acknowledged",
            "interpretation_id": str(uuid.uuid4()),
            "csrf_token": csrf_token(client, "/review"),
        },
    )
    assert response.status_code == 404


def test_the_queue_shows_only_the_clinicians_own_clinics(world: World, client: FlaskClient) -> None:
    world.post("NORTH-1", CRITICAL_K)
    world.post("SOUTH-1", CRITICAL_K, clinic="south")
    sign_in(client, SOUTH_CLINICIAN)
    page = client.get("/review").get_data(as_text=True)
    assert "SOUTH-1" in page and "NORTH-1" not in page
    # a clinic that is not theirs, asked for by name, shows nothing of it
    other = client.get("/review?clinic=north", follow_redirects=True).get_data(as_text=True)
    assert "not one of your clinics" in other and "NORTH-1" not in other
