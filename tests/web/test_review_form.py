"""The review form on a panel's page: the note rule shown inline and naming the note, a
saved review sends the clinician to the next pending panel and takes the panel out of the
queue, a stale page saves nothing."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from labinterp.models import Review
from tests.web.conftest import CRITICAL_K, ROUTINE_D, URGENT_K, World, csrf_token, events


def _form(client: FlaskClient, panel_id: str) -> dict[str, str]:
    page = client.get(f"/review/panels/{panel_id}").get_data(as_text=True)
    found = re.search(r'name="interpretation_id" value="([^"]+)"', page)
    assert found
    return {
        "interpretation_id": found.group(1),
        "csrf_token": csrf_token(client, f"/review/panels/{panel_id}"),
    }


def _submit(client: FlaskClient, panel_id: str, **fields: str) -> Any:
    return client.post(
        f"/review/panels/{panel_id}/reviews", data={**_form(client, panel_id), **fields}
    )


def _reviews(world: World) -> int:
    with world.runtime.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(Review)) or 0)


def test_dismissing_a_critical_panel_without_a_note_shows_the_error_inline_naming_the_note(
    world: World, clinician: FlaskClient
) -> None:
    panel_id = world.post("K-1", CRITICAL_K)
    response = _submit(clinician, panel_id, decision="dismissed", note="   ")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    note_error = re.search(r'<p class="field-error" id="note-error">([^<]*)</p>', page)
    assert note_error and note_error.group(1).startswith("Note: a dismissed decision")
    assert 'aria-describedby="note-error"' in page
    assert 'value="dismissed" checked' in page  # the choice is kept
    assert _reviews(world) == 0


def test_the_note_typed_is_kept_when_the_form_is_shown_again(
    world: World, clinician: FlaskClient
) -> None:
    panel_id = world.post("K-1", CRITICAL_K)
    response = _submit(clinician, panel_id, note="<b>called</b> the ward")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Choose a decision" in page
    assert "&lt;b&gt;called&lt;/b&gt; the ward</textarea>" in page


def test_a_saved_review_goes_to_the_next_pending_panel_and_leaves_the_queue(
    world: World, clinician: FlaskClient
) -> None:
    critical = world.post("K-1", CRITICAL_K)
    urgent = world.post("K-2", URGENT_K)
    response = _submit(
        clinician, critical, decision="follow_up", note="repeat on a fresh sample today"
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/review/panels/{urgent}"
    landed = clinician.get(response.headers["Location"]).get_data(as_text=True)
    assert "Reviewed K-1 (follow up)" in landed
    queue = clinician.get("/review").get_data(as_text=True)
    assert "K-2" in queue and "K-1" not in queue
    reviewed = clinician.get("/review?status=reviewed").get_data(as_text=True)
    assert "K-1" in reviewed
    [event] = events(world, "review.create")
    assert event.detail["decision"] == "follow_up"
    page = clinician.get(f"/review/panels/{critical}").get_data(as_text=True)
    assert "Reviewed by <strong>ana@north.example</strong>" in page
    assert "repeat on a fresh sample today" in page  # in the history


def test_the_last_review_goes_back_to_the_empty_queue(world: World, clinician: FlaskClient) -> None:
    panel_id = world.post("D-1", ROUTINE_D)
    response = _submit(clinician, panel_id, decision="acknowledged")
    assert response.headers["Location"] == "/review"
    queue = clinician.get("/review").get_data(as_text=True)
    assert "Reviewed D-1 (acknowledged). No panel is waiting." in queue
    assert "Normal panels never appear in it" in queue


def test_a_review_of_an_interpretation_no_longer_the_newest_saves_nothing_and_says_reload(
    world: World, clinician: FlaskClient
) -> None:
    panel_id = world.post("K-1", CRITICAL_K)
    fields = _form(clinician, panel_id)
    # the clinic corrects the panel, and it is interpreted again, while the page is open
    correction = world.app.test_client().post(
        f"/api/v1/panels/{panel_id}/revisions",
        json={
            "accession": "K-1",
            "patient": {"id": "P-K-1", "sex": "female", "age_years": 40},
            "collected_at": "2026-11-01T08:00:00Z",
            "results": [{"analyte": "potassium", "value": 2.9, "unit": "mmol/L"}],
        },
        headers={"Authorization": f"Bearer {world.tokens['north']}"},
    )
    assert correction.status_code == 202, correction.get_json()
    world.interpret(panel_id)
    response = clinician.post(
        f"/review/panels/{panel_id}/reviews", data={**fields, "decision": "acknowledged"}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "Not saved." in page and "re-interpreted since you read it" in page
    assert "read it, then sign it off again" in page
    assert _reviews(world) == 0
