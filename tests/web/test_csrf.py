"""Every form of the pages carries a CSRF token, and a POST without it records nothing; the
JSON API (bearer tokens, never cookies) needs none."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import func, select

from labinterp.models import Review
from tests.web.conftest import CRITICAL_K, NORTH_CLINICIAN, PASSWORD, World, events


def _reviews(world: World) -> int:
    with world.runtime.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(Review)) or 0)


def test_a_sign_in_without_the_csrf_token_is_refused_and_nothing_is_recorded(
    world: World, client: FlaskClient
) -> None:
    response = client.post("/sign-in", data={"email": NORTH_CLINICIAN, "password": PASSWORD})
    assert response.status_code == 400
    assert "nothing was saved" in response.get_data(as_text=True)
    assert events(world, "user.sign_in") == [] and events(world, "user.sign_in_failed") == []
    assert client.get("/review").status_code == 302  # not signed in


def test_a_review_without_the_csrf_token_or_with_a_forged_one_is_refused_and_not_recorded(
    world: World, clinician: FlaskClient
) -> None:
    panel_id = world.post("K-1", CRITICAL_K)
    page = clinician.get(f"/review/panels/{panel_id}").get_data(as_text=True)
    interpretation_id = page.split('name="interpretation_id" value="')[1].split('"')[0]
    for token in (None, "forged", "IjAwMDAi.Z0000.AAAAAAAAAAAAAAAAAAAAAAAAAAA"):
        data = {"decision": "acknowledged", "interpretation_id": interpretation_id}
        if token is not None:
            data["csrf_token"] = token
        response = clinician.post(f"/review/panels/{panel_id}/reviews", data=data)
        assert response.status_code == 400, token
        assert "The form could not be accepted" in response.get_data(as_text=True)
    assert _reviews(world) == 0
    assert events(world, "review.create") == []


def test_a_token_from_another_session_does_not_pass(world: World, clinician: FlaskClient) -> None:
    """A token is bound to its session: an attacker's own token is worth nothing in the
    victim's browser."""
    panel_id = world.post("K-1", CRITICAL_K)
    other = world.app.test_client()
    foreign = other.get("/sign-in").get_data(as_text=True)
    token = foreign.split('name="csrf_token" value="')[1].split('"')[0]
    response = clinician.post(
        f"/review/panels/{panel_id}/reviews",
        data={"decision": "acknowledged", "csrf_token": token},
    )
    assert response.status_code == 400
    assert _reviews(world) == 0


def test_sign_out_without_the_token_is_refused_and_the_session_stays(
    clinician: FlaskClient,
) -> None:
    assert clinician.post("/sign-out").status_code == 400
    assert clinician.get("/review").status_code == 200


def test_the_json_api_needs_no_csrf_token(world: World, client: FlaskClient) -> None:
    """The API authenticates with bearer tokens only: CSRF protection is for the pages."""
    response = client.post(
        "/api/v1/panels",
        json={
            "accession": "API-1",
            "patient": {"id": "P-1", "sex": "female", "age_years": 40},
            "collected_at": "2026-11-01T08:00:00Z",
            "results": [{"analyte": "potassium", "value": 4.2, "unit": "mmol/L"}],
        },
        headers={"Authorization": f"Bearer {world.tokens['north']}"},
    )
    assert response.status_code == 202, response.get_json()
