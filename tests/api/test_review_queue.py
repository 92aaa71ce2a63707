"""The clinician's review queue and sign-off (API.md "Review")."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from labinterp.models import AuditEvent
from labinterp.runtime import Runtime
from labinterp.services.accounts import create_clinic, create_token
from tests.api.conftest import Tokens, assert_problem, auth


def panel(accession: str, results: list[tuple[str, str, str]], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "accession": accession,
        "patient": {"id": f"P-{accession}", "sex": "female", "age_years": 40},
        "collected_at": extra.pop("collected_at", "2026-11-01T08:00:00Z"),
        "results": [{"analyte": a, "value": float(v), "unit": u} for a, v, u in results],
    }
    body.update(extra)
    return body


CRITICAL = [("potassium", "2.4", "mmol/L")]  # hypokalemia grade 4: critical
URGENT = [("potassium", "2.9", "mmol/L")]  # grade 3: urgent
ROUTINE = [("vitamin_d_25oh", "40", "nmol/L")]  # insufficiency: routine
MILD_LOW_K = [("potassium", "3.2", "mmol/L")]  # hypokalemia grade 1, routine
NORMAL = [("potassium", "4.2", "mmol/L")]


@pytest.fixture
def post(client: FlaskClient, tokens: Tokens, work: Any):  # type: ignore[no-untyped-def]
    """Post a panel as the north clinic and interpret it; its id."""

    def run(body: dict[str, Any], token: str | None = None) -> str:
        response = client.post("/api/v1/panels", json=body, headers=auth(token or tokens.clinic))
        assert response.status_code == 202, response.get_json()
        panel_id = response.get_json()["id"]
        work(panel_id)
        return str(panel_id)

    return run


def queue(client: FlaskClient, token: str, query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/v1/review-queue{query}", headers=auth(token))
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def accessions(page: dict[str, Any]) -> list[str]:
    return [item["accession"] for item in page["items"]]


def review(
    client: FlaskClient, token: str, panel_id: str, decision: str = "acknowledged", **body: Any
) -> Any:
    return client.post(
        f"/api/v1/panels/{panel_id}/reviews",
        json={"decision": decision, **body},
        headers=auth(token),
    )


def revise(client: FlaskClient, tokens: Tokens, work: Any, panel_id: str, body: dict) -> None:
    response = client.post(
        f"/api/v1/panels/{panel_id}/revisions", json=body, headers=auth(tokens.clinic)
    )
    assert response.status_code == 202, response.get_json()
    work(panel_id)


def test_queue_orders_critical_then_urgent_then_routine_then_oldest_collection(
    client: FlaskClient, tokens: Tokens, post: Any
) -> None:
    post(panel("R-new", ROUTINE, collected_at="2026-11-03T08:00:00Z"))
    post(panel("R-old", ROUTINE, collected_at="2026-11-01T08:00:00Z"))
    post(panel("U-1", URGENT, collected_at="2026-11-04T08:00:00Z"))
    post(panel("C-new", CRITICAL, collected_at="2026-11-05T08:00:00Z"))
    post(panel("C-old", CRITICAL, collected_at="2026-11-02T08:00:00Z"))
    post(panel("N-1", NORMAL))  # normal panels never enter the queue
    page = queue(client, tokens.clinician)
    assert accessions(page) == ["C-old", "C-new", "U-1", "R-old", "R-new"]
    assert page["total"] == 5 and page["page"] == 1 and page["per_page"] == 20
    first = page["items"][0]
    assert first["priority"] == "critical" and first["status"] == "flagged"
    assert first["finding_codes"] == ["hypokalemia"] and first["red_flag_codes"] == []
    assert first["clinic"] == "north" and first["patient_id"] == "P-C-old"
    assert first["review_status"] == "pending" and first["collected_at"].startswith("2026-11-02")
    assert first["alert"] is None and first["alert_undelivered"] is False


def test_queue_pages_and_each_filter_narrows_it(
    client: FlaskClient, tokens: Tokens, post: Any
) -> None:
    post(panel("C-1", CRITICAL))
    post(panel("U-1", URGENT))
    post(panel("R-1", ROUTINE))
    post(
        panel(
            "W-1",
            MILD_LOW_K,
            collected_at="2026-11-02T08:00:00Z",
            context={
                "twitching": {"sites": ["toes"], "duration_days": 3},
                "symptoms": ["muscle_weakness"],
            },
        )
    )
    assert accessions(queue(client, tokens.clinician, "?priority=critical")) == ["C-1"]
    both = queue(client, tokens.clinician, "?priority=critical&priority=urgent")
    assert accessions(both) == ["C-1", "U-1", "W-1"]  # W-1: an urgent red flag
    assert accessions(queue(client, tokens.clinician, "?flag=vitamin_d_insufficiency")) == ["R-1"]
    assert sorted(accessions(queue(client, tokens.clinician, "?flag=hypokalemia"))) == [
        "C-1",
        "U-1",
        "W-1",
    ]
    assert accessions(queue(client, tokens.clinician, "?flag=weakness")) == ["W-1"]
    assert accessions(queue(client, tokens.clinician, "?flag=LL")) == ["C-1"]
    assert len(queue(client, tokens.clinician, "?clinic=north")["items"]) == 4
    second = queue(client, tokens.clinician, "?per_page=3&page=2")
    assert second["total"] == 4 and len(second["items"]) == 1
    bad = client.get("/api/v1/review-queue?priority=soon", headers=auth(tokens.clinician))
    assert "priority" in str(assert_problem(bad, 422)["errors"])
    unknown = client.get("/api/v1/review-queue?flag=hypo", headers=auth(tokens.clinician))
    assert "flag" in assert_problem(unknown, 422)["errors"]
    other = client.get("/api/v1/review-queue?clinic=south", headers=auth(tokens.clinician))
    assert "not one of your clinics" in assert_problem(other, 422)["errors"]["clinic"][0]


def test_a_clinic_token_and_an_admin_token_get_403_from_the_queue_and_reviews(
    client: FlaskClient, tokens: Tokens, post: Any
) -> None:
    panel_id = post(panel("C-1", CRITICAL))
    for token in (tokens.clinic, tokens.admin):
        assert_problem(client.get("/api/v1/review-queue", headers=auth(token)), 403)
        assert_problem(review(client, token, panel_id), 403)
    assert_problem(client.get("/api/v1/review-queue"), 401)


def test_a_clinician_sees_only_the_panels_of_their_clinics(
    client: FlaskClient, tokens: Tokens, post: Any, runtime: Runtime
) -> None:
    ours = post(panel("C-north", CRITICAL))
    theirs = post(panel("C-south", CRITICAL), tokens.other_clinic)
    assert accessions(queue(client, tokens.clinician)) == ["C-north"]
    # another clinic's panel is 404, exactly as one that does not exist
    assert_problem(review(client, tokens.clinician, theirs), 404)
    assert_problem(review(client, tokens.clinician, str(uuid.uuid4())), 404)
    listed = client.get(f"/api/v1/panels/{theirs}/reviews", headers=auth(tokens.clinician))
    assert_problem(listed, 404)
    assert review(client, tokens.clinician, ours).status_code == 201
    with runtime.session_factory() as session:
        both = create_token(session, "clinician", ["north", "south"]).token
    assert sorted(accessions(queue(client, both))) == ["C-south"]  # north's is reviewed
    assert sorted(accessions(queue(client, both, "?status=all"))) == ["C-north", "C-south"]


def test_a_review_takes_the_panel_out_of_pending_and_shows_with_the_panel(
    client: FlaskClient, tokens: Tokens, post: Any
) -> None:
    panel_id = post(panel("U-1", URGENT))
    item = queue(client, tokens.clinician)["items"][0]
    answer = review(
        client,
        tokens.clinician,
        panel_id,
        "follow_up",
        note="repeat potassium tomorrow",
        interpretation_id=item["interpretation_id"],
    )
    assert answer.status_code == 201, answer.get_json()
    made = answer.get_json()
    assert made["decision"] == "follow_up" and made["note"] == "repeat potassium tomorrow"
    assert made["interpretation_id"] == item["interpretation_id"]
    assert made["reviewer"].startswith("token:")
    assert queue(client, tokens.clinician)["items"] == []
    reviewed = queue(client, tokens.clinician, "?status=reviewed")["items"]
    assert [i["accession"] for i in reviewed] == ["U-1"]
    assert reviewed[0]["review_status"] == "reviewed" and reviewed[0]["reviewed_at"]
    shown = client.get(f"/api/v1/panels/{panel_id}", headers=auth(tokens.clinic)).get_json()
    assert shown["review_status"] == "reviewed"
    assert [r["decision"] for r in shown["reviews"]] == ["follow_up"]
    listed = client.get(f"/api/v1/panels/{panel_id}/reviews", headers=auth(tokens.clinic))
    assert listed.get_json()["total"] == 1


def test_reviews_are_append_only_each_is_kept(
    client: FlaskClient, tokens: Tokens, post: Any
) -> None:
    panel_id = post(panel("R-1", ROUTINE))
    assert review(client, tokens.clinician, panel_id, "acknowledged").status_code == 201
    assert review(client, tokens.clinician, panel_id, "dismissed").status_code == 201
    listed = client.get(f"/api/v1/panels/{panel_id}/reviews", headers=auth(tokens.clinician))
    assert [r["decision"] for r in listed.get_json()["items"]] == ["dismissed", "acknowledged"]
    assert client.delete(f"/api/v1/panels/{panel_id}/reviews").status_code in (401, 405)


def test_a_changed_interpretation_sends_a_reviewed_panel_back_to_the_queue(
    client: FlaskClient, tokens: Tokens, post: Any, work: Any
) -> None:
    panel_id = post(panel("K-1", MILD_LOW_K))
    assert review(client, tokens.clinician, panel_id).status_code == 201
    assert queue(client, tokens.clinician)["items"] == []
    # a correction to 2.9 mmol/L: grade 3 and urgent now; back to pending
    revise(client, tokens, work, panel_id, panel("K-1", URGENT))
    back = queue(client, tokens.clinician)["items"]
    assert [i["accession"] for i in back] == ["K-1"] and back[0]["priority"] == "urgent"


def test_an_unchanged_interpretation_keeps_the_panel_reviewed(
    client: FlaskClient, tokens: Tokens, post: Any, work: Any
) -> None:
    panel_id = post(panel("K-1", MILD_LOW_K))
    assert review(client, tokens.clinician, panel_id).status_code == 201
    # 3.2 -> 3.3 mmol/L: still hypokalemia grade 1, mild, routine: nothing new to sign off
    revise(client, tokens, work, panel_id, panel("K-1", [("potassium", "3.3", "mmol/L")]))
    assert queue(client, tokens.clinician)["items"] == []
    assert accessions(queue(client, tokens.clinician, "?status=reviewed")) == ["K-1"]


def test_a_correction_to_normal_takes_the_panel_out_of_the_queue(
    client: FlaskClient, tokens: Tokens, post: Any, work: Any
) -> None:
    panel_id = post(panel("K-1", MILD_LOW_K))
    revise(client, tokens, work, panel_id, panel("K-1", NORMAL))
    assert queue(client, tokens.clinician, "?status=all")["items"] == []


@pytest.mark.parametrize("decision", ["follow_up", "dismissed"])
def test_setting_a_critical_panel_aside_needs_a_note(
    client: FlaskClient, tokens: Tokens, post: Any, decision: str
) -> None:
    panel_id = post(panel("C-1", CRITICAL))
    refused = assert_problem(review(client, tokens.clinician, panel_id, decision), 422)
    assert list(refused["errors"]) == ["note"]
    blank = review(client, tokens.clinician, panel_id, decision, note="   ")
    assert list(assert_problem(blank, 422)["errors"]) == ["note"]
    assert accessions(queue(client, tokens.clinician)) == ["C-1"]  # nothing recorded
    done = review(client, tokens.clinician, panel_id, decision, note="called the patient")
    assert done.status_code == 201


def test_acknowledging_a_critical_panel_and_setting_aside_a_routine_one_need_no_note(
    client: FlaskClient, tokens: Tokens, post: Any
) -> None:
    assert review(client, tokens.clinician, post(panel("C-1", CRITICAL))).status_code == 201
    routine = post(panel("R-1", ROUTINE))
    assert review(client, tokens.clinician, routine, "dismissed").status_code == 201


def test_a_review_of_an_interpretation_replaced_since_it_was_read_is_409(
    client: FlaskClient, tokens: Tokens, post: Any, work: Any
) -> None:
    panel_id = post(panel("K-1", MILD_LOW_K))
    seen = queue(client, tokens.clinician)["items"][0]["interpretation_id"]
    revise(client, tokens, work, panel_id, panel("K-1", URGENT))
    stale = review(client, tokens.clinician, panel_id, interpretation_id=seen)
    body = assert_problem(stale, 409)
    assert "re-interpreted since you read it" in body["detail"]
    assert body["interpretation_id"] != seen
    assert body["type"] == "urn:labinterp:problem:state-conflict"
    assert accessions(queue(client, tokens.clinician)) == ["K-1"]


def test_a_panel_not_interpreted_yet_cannot_be_reviewed(
    client: FlaskClient, tokens: Tokens
) -> None:
    response = client.post(
        "/api/v1/panels", json=panel("Q-1", CRITICAL), headers=auth(tokens.clinic)
    )
    body = assert_problem(review(client, tokens.clinician, response.get_json()["id"]), 409)
    assert "no interpretation yet" in body["detail"]


def test_bad_review_bodies_name_the_field(client: FlaskClient, tokens: Tokens, post: Any) -> None:
    panel_id = post(panel("R-1", ROUTINE))
    assert (
        "decision"
        in assert_problem(review(client, tokens.clinician, panel_id, "ok"), 422)["errors"]
    )
    missing = client.post(
        f"/api/v1/panels/{panel_id}/reviews", json={}, headers=auth(tokens.clinician)
    )
    assert "decision" in assert_problem(missing, 422)["errors"]
    long = review(client, tokens.clinician, panel_id, note="x" * 4001)
    assert "note" in assert_problem(long, 422)["errors"]


def test_reviews_and_queue_reads_are_audited_with_who_and_where(
    client: FlaskClient, tokens: Tokens, post: Any, runtime: Runtime
) -> None:
    panel_id = post(panel("C-1", CRITICAL))
    queue(client, tokens.clinician)
    assert review(client, tokens.clinician, panel_id).status_code == 201
    with runtime.session_factory() as session:
        events = {
            e.action: e
            for e in session.scalars(
                select(AuditEvent).where(
                    AuditEvent.action.in_(["review.create", "review_queue.read"])
                )
            )
        }
    assert events["review.create"].panel_id == uuid.UUID(panel_id)
    assert events["review.create"].detail["decision"] == "acknowledged"
    assert events["review.create"].address == "127.0.0.1"
    assert events["review.create"].token_id is not None
    assert events["review_queue.read"].detail["panel_ids"] == [panel_id]


def test_a_clinician_token_of_a_user_reads_the_users_clinics_and_names_the_user(
    client: FlaskClient, tokens: Tokens, post: Any, runtime: Runtime
) -> None:
    from labinterp.services.users import create_user, disable_user

    post(panel("C-south", CRITICAL), tokens.other_clinic)
    with runtime.session_factory() as session:
        create_clinic(session, "east")
        create_user(session, "Dr.Ada@Example.org", "correct horse battery", "clinician", ["south"])
        token = create_token(session, "clinician", [], user_email="dr.ada@example.org").token
    items = queue(client, token)["items"]
    assert accessions({"items": items}) == ["C-south"]
    made = review(client, token, items[0]["panel_id"]).get_json()
    assert made["reviewer"] == "user:dr.ada@example.org"
    with runtime.session_factory() as session:
        disable_user(session, "dr.ada@example.org")
    client.application.extensions["labinterp.token_cache"].clear()
    refused = client.get("/api/v1/review-queue", headers=auth(token))
    assert "disabled" in assert_problem(refused, 401)["detail"]


def test_the_queue_shows_critical_panels_whose_alert_did_not_arrive(
    client: FlaskClient, tokens: Tokens, post: Any, runtime: Runtime
) -> None:
    import datetime as dt

    from labinterp.models import Alert, Panel

    delivered_id = post(panel("C-delivered", CRITICAL))
    pending_id = post(panel("C-pending", CRITICAL))
    post(panel("U-1", URGENT))
    now = dt.datetime.now(dt.UTC)
    with runtime.session_factory() as session:
        for panel_id, status in ((delivered_id, "delivered"), (pending_id, "pending")):
            row = session.get(Panel, uuid.UUID(panel_id))
            assert row is not None and row.interpretation_id is not None
            session.add(
                Alert(
                    interpretation_id=row.interpretation_id,
                    panel_id=row.id,
                    clinic_id=row.clinic_id,
                    status=status,
                    attempts=3,
                    give_up_at=now + dt.timedelta(days=1),
                    last_error=None if status == "delivered" else "HTTP 503",
                )
            )
        session.commit()
    items = {i["accession"]: i for i in queue(client, tokens.clinician)["items"]}
    assert items["C-pending"]["alert_undelivered"] is True
    assert items["C-pending"]["alert"] == {
        "status": "pending",
        "delivered": False,
        "attempts": 3,
        "last_error": "HTTP 503",
    }
    assert items["C-delivered"]["alert_undelivered"] is False
    assert items["U-1"]["alert"] is None
    assert accessions(queue(client, tokens.clinician, "?alert=undelivered")) == ["C-pending"]
