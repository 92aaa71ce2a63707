"""The audit trail (issue 6): every read of a panel, every review, sign-in, token, user,
clinic and ruleset change is one event saying who, what, which panels, when and from where;
one event per request, in the transaction of what it records; `GET /api/v1/audit` (admin)
finds them by panel, actor, action and time."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from labinterp.models import AuditEvent, Review
from labinterp.runtime import Runtime
from labinterp.services import accounts, audit, users
from labinterp.services.audit import Actor
from labinterp.services.errors import SignInRefused
from tests.api.conftest import Tokens, assert_problem, auth, sample_panel

HTTP = "127.0.0.1"  # the test client's address, as request.remote_addr gives it
CLINICIAN = Actor(name="cli:ops", role="admin", address="10.0.0.9")

NORMAL_K = [{"analyte": "potassium", "value": 4.2, "unit": "mmol/L"}]
CRITICAL_K = [{"analyte": "potassium", "value": 2.4, "unit": "mmol/L"}]  # grade 4: critical


@pytest.fixture
def post(client: FlaskClient, tokens: Tokens, work: Any):  # type: ignore[no-untyped-def]
    """Post a panel as the north clinic and interpret it; its id."""

    def run(accession: str, results: list[dict[str, Any]] | None = None, **changes: Any) -> str:
        body = sample_panel(accession=accession, **changes)
        if results is not None:
            body["results"] = results
        response = client.post("/api/v1/panels", json=body, headers=auth(tokens.clinic))
        assert response.status_code == 202, response.get_json()
        work(response.get_json()["id"])
        return str(response.get_json()["id"])

    return run


def newest_id(runtime: Runtime) -> int:
    with runtime.session_factory() as session:
        return int(session.scalar(select(func.max(AuditEvent.id))) or 0)


def events_after(runtime: Runtime, after: int, action: str | None = None) -> list[AuditEvent]:
    """The events written after event ``after``, in the order they were written."""
    with runtime.session_factory() as session:
        query = select(AuditEvent).where(AuditEvent.id > after).order_by(AuditEvent.id)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        return list(session.scalars(query))


def one_event(runtime: Runtime, after: int) -> AuditEvent:
    """The request wrote exactly one event; that event."""
    written = events_after(runtime, after)
    assert len(written) == 1, [e.action for e in written]
    return written[0]


def assert_recent(event: AuditEvent) -> None:
    assert dt.timedelta(0) <= dt.datetime.now(dt.UTC) - event.at < dt.timedelta(minutes=1)


def trail(client: FlaskClient, tokens: Tokens, query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/v1/audit{query}", headers=auth(tokens.admin))
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


# --- every kind of event ----------------------------------------------------------------------


def test_posting_a_panel_records_who_which_panel_and_from_where(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    before = newest_id(runtime)
    response = client.post(
        "/api/v1/panels", json=sample_panel(accession="A-1"), headers=auth(tokens.clinic)
    )
    assert response.status_code == 202
    created = one_event(runtime, before)
    assert created.action == "panel.create"
    assert created.panel_id == uuid.UUID(response.get_json()["id"])
    assert created.role == "clinic" and created.actor.startswith("token:")
    assert created.address == HTTP and created.token_id is not None
    assert created.detail == {"accession": "A-1"}
    assert_recent(created)


def test_a_revision_is_recorded_with_its_number(
    client: FlaskClient, tokens: Tokens, runtime: Runtime, post: Any
) -> None:
    panel_id = post("A-1")
    before = newest_id(runtime)
    body = sample_panel(accession="A-1")
    body["results"][0]["value"] = 1.5
    response = client.post(
        f"/api/v1/panels/{panel_id}/revisions", json=body, headers=auth(tokens.clinic)
    )
    assert response.status_code == 202
    revised = one_event(runtime, before)
    assert (revised.action, revised.panel_id, revised.address) == (
        "panel.revise",
        uuid.UUID(panel_id),
        HTTP,
    )
    assert revised.detail == {"revision": 2}


@pytest.mark.parametrize(
    ("path", "action"),
    [
        ("/api/v1/panels/{id}", "panel.read"),
        ("/api/v1/panels/{id}/interpretations", "interpretations.read"),
        ("/api/v1/panels/{id}/reviews", "reviews.read"),
    ],
)
def test_each_read_of_one_panel_is_one_event_naming_it(
    client: FlaskClient, tokens: Tokens, runtime: Runtime, post: Any, path: str, action: str
) -> None:
    panel_id = post("A-1")
    before = newest_id(runtime)
    response = client.get(path.format(id=panel_id), headers=auth(tokens.clinician))
    assert response.status_code == 200
    read = one_event(runtime, before)
    assert read.action == action
    assert read.panel_id == uuid.UUID(panel_id)
    assert read.role == "clinician" and read.actor.startswith("token:")
    assert read.address == HTTP and read.token_id is not None and read.clinic_id is not None
    assert_recent(read)


def test_a_list_of_twenty_panels_is_one_event_naming_every_panel_of_the_page(
    client: FlaskClient, tokens: Tokens, runtime: Runtime, post: Any
) -> None:
    """One audit write per request, not per panel."""
    ids = {post(f"L-{n:02}") for n in range(20)}
    before = newest_id(runtime)
    response = client.get("/api/v1/panels?per_page=50&status=flagged", headers=auth(tokens.admin))
    assert response.status_code == 200 and response.get_json()["total"] == 20
    listed = one_event(runtime, before)
    assert listed.action == "panels.read" and listed.panel_id is None
    assert set(listed.detail["panel_ids"]) == ids
    assert listed.detail["panel_ids"] == [item["id"] for item in response.get_json()["items"]]
    assert listed.detail["filter"] == {"status": "flagged"}
    assert (listed.role, listed.address) == ("admin", HTTP)


def test_a_list_read_names_only_the_panels_of_its_page_and_the_filter_asked(
    client: FlaskClient, tokens: Tokens, runtime: Runtime, post: Any
) -> None:
    for n in range(5):
        post(f"L-{n}")
    before = newest_id(runtime)
    response = client.get(
        "/api/v1/panels?per_page=2&page=2&patient_id=P-0042&collected_from=2026-11-01",
        headers=auth(tokens.clinic),
    )
    listed = one_event(runtime, before)
    assert listed.detail["panel_ids"] == [item["id"] for item in response.get_json()["items"]]
    assert len(listed.detail["panel_ids"]) == 2
    assert listed.detail["filter"] == {
        "patient_id": "P-0042",
        "collected_from": "2026-11-01T00:00:00+00:00",
    }


def test_an_empty_list_read_is_recorded_too(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    """Who searched for a patient matters even when nothing was found."""
    before = newest_id(runtime)
    client.get("/api/v1/panels?patient_id=P-9", headers=auth(tokens.clinician))
    listed = one_event(runtime, before)
    assert listed.detail == {"panel_ids": [], "filter": {"patient_id": "P-9"}}


def test_a_trend_read_is_one_event_naming_its_panels_analyte_and_patient(
    client: FlaskClient, tokens: Tokens, runtime: Runtime, post: Any
) -> None:
    first = post("T-1", collected_at="2026-10-01T08:00:00Z")
    second = post("T-2")
    before = newest_id(runtime)
    response = client.get(
        "/api/v1/patients/P-0042/trend?analyte=magnesium", headers=auth(tokens.clinician)
    )
    assert response.status_code == 200
    read = one_event(runtime, before)
    assert read.action == "trend.read" and read.address == HTTP
    assert sorted(read.detail["panel_ids"]) == sorted([first, second])
    assert read.detail["analyte"] == "magnesium"
    with runtime.session_factory() as session:
        from labinterp.models import Panel

        patient = session.get(Panel, uuid.UUID(first)).patient  # type: ignore[union-attr]
        assert read.detail["patient_id"] == str(patient.id)  # labinterp's id, not P-0042
        assert read.clinic_id == patient.clinic_id


def test_the_review_queue_read_and_a_review_are_recorded(
    client: FlaskClient, tokens: Tokens, runtime: Runtime, post: Any
) -> None:
    panel_id = post("Q-1")
    before = newest_id(runtime)
    assert client.get("/api/v1/review-queue", headers=auth(tokens.clinician)).status_code == 200
    queue_read = one_event(runtime, before)
    assert queue_read.action == "review_queue.read"
    assert queue_read.detail["panel_ids"] == [panel_id]
    before = newest_id(runtime)
    response = client.post(
        f"/api/v1/panels/{panel_id}/reviews",
        json={"decision": "acknowledged"},
        headers=auth(tokens.clinician),
    )
    assert response.status_code == 201
    reviewed = one_event(runtime, before)
    assert (reviewed.action, reviewed.panel_id, reviewed.address) == (
        "review.create",
        uuid.UUID(panel_id),
        HTTP,
    )
    assert reviewed.detail["review_id"] == response.get_json()["id"]


def test_a_sign_in_and_a_failed_one_are_recorded_with_the_address(runtime: Runtime) -> None:
    with runtime.session_factory() as session:
        accounts.create_clinic(session, "north")
        users.create_user(
            session, "ada@example.org", "correct horse battery", "clinician", ["north"]
        )
        before = newest_id(runtime)
        actor = users.sign_in(session, "Ada@example.org", "correct horse battery", "10.1.2.3")
        signed_in = one_event(runtime, before)
        before = newest_id(runtime)
        with pytest.raises(SignInRefused):
            users.sign_in(session, "ada@example.org", "wrong horse battery", "10.9.9.9")
        refused = one_event(runtime, before)
    assert (signed_in.action, signed_in.actor, signed_in.address) == (
        "user.sign_in",
        "user:ada@example.org",
        "10.1.2.3",
    )
    assert signed_in.detail == {"user_id": str(actor.user_id)}
    assert (refused.action, refused.actor, refused.role, refused.address) == (
        "user.sign_in_failed",
        "user:ada@example.org",
        "anonymous",
        "10.9.9.9",
    )
    assert refused.detail == {"reason": "wrong password"}  # never the password


def test_clinic_token_and_user_changes_are_recorded_with_the_operator(runtime: Runtime) -> None:
    with runtime.session_factory() as session:
        before = newest_id(runtime)
        clinic = accounts.create_clinic(session, "east", actor=CLINICIAN)
        issued = accounts.create_token(session, "clinic", ["east"], "lab", actor=CLINICIAN)
        accounts.revoke_token(session, issued.token_id, actor=CLINICIAN)
        user = users.create_user(
            session, "bo@example.org", "correct horse battery", "clinician", ["east"], CLINICIAN
        )
        users.disable_user(session, "bo@example.org", actor=CLINICIAN)
    written = events_after(runtime, before)
    assert [e.action for e in written] == [
        "clinic.create",
        "token.create",
        "token.revoke",
        "user.create",
        "user.disable",
    ]
    assert {(e.actor, e.role, e.address) for e in written} == {("cli:ops", "admin", "10.0.0.9")}
    by_action = {e.action: e for e in written}
    assert by_action["clinic.create"].clinic_id == clinic.id
    assert by_action["token.create"].detail["token_id"] == str(issued.token_id)
    assert by_action["token.create"].clinic_id == clinic.id
    assert issued.token not in str(by_action["token.create"].detail)  # never the token
    assert by_action["token.revoke"].detail["token_id"] == str(issued.token_id)
    assert by_action["user.create"].detail["user_id"] == str(user.id)
    assert "correct horse" not in str(by_action["user.create"].detail)
    assert by_action["user.disable"].detail["user_id"] == str(user.id)


def test_a_ruleset_activation_is_recorded_with_the_version_it_replaced(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    before = newest_id(runtime)
    response = client.post("/api/v1/rulesets/2026.2/activate", headers=auth(tokens.admin))
    assert response.status_code == 200
    activated = one_event(runtime, before)
    assert (activated.action, activated.role, activated.address) == (
        "ruleset.activate",
        "admin",
        HTTP,
    )
    assert activated.detail == {"version": "2026.2", "previous": None}
    before = newest_id(runtime)
    client.post("/api/v1/rulesets/2026.1/activate", headers=auth(tokens.admin))
    assert one_event(runtime, before).detail == {"version": "2026.1", "previous": "2026.2"}


# --- in the transaction of what it records ----------------------------------------------------


def test_a_refused_review_leaves_no_review_event(
    client: FlaskClient, tokens: Tokens, runtime: Runtime, post: Any
) -> None:
    panel_id = post("C-1", CRITICAL_K)
    before = newest_id(runtime)
    refused = client.post(
        f"/api/v1/panels/{panel_id}/reviews",
        json={"decision": "dismissed"},  # a critical value set aside needs a note
        headers=auth(tokens.clinician),
    )
    assert "note" in assert_problem(refused, 422)["errors"]
    stale = client.post(
        f"/api/v1/panels/{panel_id}/reviews",
        json={"decision": "acknowledged", "interpretation_id": str(uuid.uuid4())},
        headers=auth(tokens.clinician),
    )
    assert_problem(stale, 409)
    assert events_after(runtime, before) == []


def test_a_review_that_fails_to_store_takes_its_audit_event_with_it(
    client: FlaskClient, tokens: Tokens, runtime: Runtime, post: Any
) -> None:
    """The review and its event are written in one transaction: when the database refuses
    the review after both were sent, neither is kept (an event committed on its own would
    remain)."""
    panel_id = post("R-1")
    before = newest_id(runtime)

    def refuse_reviews(session: Session, _context: Any) -> None:
        if any(isinstance(row, Review) for row in session.new):
            sent = [type(row).__name__ for row in session.new]
            assert "AuditEvent" in sent, sent  # both are in this flush
            raise RuntimeError("the database refuses the review")

    event.listen(runtime.session_factory, "after_flush", refuse_reviews)
    try:
        response = client.post(
            f"/api/v1/panels/{panel_id}/reviews",
            json={"decision": "acknowledged"},
            headers=auth(tokens.clinician),
        )
    finally:
        event.remove(runtime.session_factory, "after_flush", refuse_reviews)
    assert response.status_code == 500
    assert events_after(runtime, before) == []
    with runtime.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Review)) == 0


def test_a_read_that_finds_nothing_records_nothing(
    client: FlaskClient, tokens: Tokens, runtime: Runtime, post: Any
) -> None:
    panel_id = post("N-1")
    before = newest_id(runtime)
    assert_problem(client.get(f"/api/v1/panels/{panel_id}", headers=auth(tokens.other_clinic)), 404)
    assert_problem(
        client.get(
            "/api/v1/patients/P-0042/trend?analyte=magnesium", headers=auth(tokens.other_clinic)
        ),
        404,
    )
    assert events_after(runtime, before) == []


# --- GET /api/v1/audit ------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["clinic", "clinician"])
def test_only_an_admin_reads_the_trail(client: FlaskClient, tokens: Tokens, who: str) -> None:
    response = client.get("/api/v1/audit", headers=auth(getattr(tokens, who)))
    assert "admin" in assert_problem(response, 403)["detail"]
    assert_problem(client.get("/api/v1/audit"), 401)


def test_an_event_shows_who_what_which_panels_when_and_from_where(
    client: FlaskClient, tokens: Tokens, runtime: Runtime, post: Any
) -> None:
    panel_id = post("S-1")
    client.get("/api/v1/panels", headers=auth(tokens.clinician))
    (listed,) = trail(client, tokens, "?action=panels.read")["items"]
    assert list(listed) == [
        "id",
        "at",
        "actor",
        "role",
        "action",
        "clinic_id",
        "panel_id",
        "panel_ids",
        "address",
        "token_id",
        "detail",
    ]
    assert listed["panel_ids"] == [panel_id] and listed["panel_id"] is None
    assert listed["role"] == "clinician" and listed["address"] == HTTP
    assert listed["actor"].startswith("token:") and uuid.UUID(listed["token_id"])
    assert listed["at"].endswith("Z")
    assert listed["detail"] == {"panel_ids": [panel_id], "filter": {}}


def test_panel_id_finds_the_panels_own_events_and_every_read_of_several_that_named_it(
    client: FlaskClient, tokens: Tokens, runtime: Runtime, post: Any
) -> None:
    mine, other = post("P-1"), post("P-2", patient={"id": "P-7", "sex": "male"})
    client.get(f"/api/v1/panels/{mine}", headers=auth(tokens.clinician))
    client.get(f"/api/v1/panels/{other}", headers=auth(tokens.clinician))
    client.get("/api/v1/panels", headers=auth(tokens.clinician))  # names both
    client.get("/api/v1/panels?patient_id=P-7", headers=auth(tokens.clinician))  # other only
    client.get("/api/v1/review-queue", headers=auth(tokens.clinician))  # names both
    client.get("/api/v1/patients/P-0042/trend?analyte=magnesium", headers=auth(tokens.clinic))
    found = trail(client, tokens, f"?panel_id={mine}")
    assert [e["action"] for e in found["items"]] == [
        "trend.read",
        "review_queue.read",
        "panels.read",
        "panel.read",
        "panel.create",
    ]
    assert found["total"] == 5
    assert all(e["panel_id"] == mine or mine in e["panel_ids"] for e in found["items"])
    assert trail(client, tokens, f"?panel_id={uuid.uuid4()}")["total"] == 0


def test_actor_and_action_filters_are_exact_and_action_repeats(
    client: FlaskClient, tokens: Tokens, runtime: Runtime, post: Any
) -> None:
    panel_id = post("F-1")
    client.get(f"/api/v1/panels/{panel_id}", headers=auth(tokens.clinician))
    client.get("/api/v1/panels", headers=auth(tokens.clinician))
    clinician = trail(client, tokens, "?action=panel.read")["items"][0]["actor"]
    by_actor = trail(client, tokens, f"?actor={clinician}")["items"]
    assert {e["action"] for e in by_actor} == {"panel.read", "panels.read"}
    assert trail(client, tokens, f"?actor={clinician[:-1]}")["total"] == 0  # exact, not a prefix
    both = trail(client, tokens, "?action=panel.read&action=panel.create")["items"]
    assert sorted(e["action"] for e in both) == ["panel.create", "panel.read"]
    assert trail(client, tokens, "?action=panel")["total"] == 0


def test_from_and_to_are_inclusive_and_a_date_alone_is_the_whole_day(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    moments = {
        "before": dt.datetime(2026, 11, 19, 23, 59, 59, 999999, tzinfo=dt.UTC),
        "start": dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        "noon": dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC),
        "end": dt.datetime(2026, 11, 20, 23, 59, 59, 999999, tzinfo=dt.UTC),
        "after": dt.datetime(2026, 11, 21, tzinfo=dt.UTC),
    }
    with runtime.session_factory() as session:
        for name, at in moments.items():
            audit.record(session, audit.SYSTEM, f"test.{name}", at=at)
        session.commit()

    only_these = "".join(f"&action=test.{name}" for name in moments)

    def actions(query: str) -> list[str]:
        return [e["action"] for e in trail(client, tokens, query + only_these)["items"]]

    assert actions("?from=2026-11-20&to=2026-11-20") == ["test.end", "test.noon", "test.start"]
    assert actions("?from=2026-11-20T12:00:00Z&to=2026-11-20T12:00:00Z") == ["test.noon"]
    # 13:00 at +01:00 is noon UTC, inclusive
    assert actions("?from=2026-11-20T13:00:00%2B01:00") == ["test.after", "test.end", "test.noon"]
    assert actions("?to=2026-11-19") == ["test.before"]
    backwards = client.get(
        "/api/v1/audit?from=2026-11-21&to=2026-11-20", headers=auth(tokens.admin)
    )
    assert "to" in assert_problem(backwards, 422)["errors"]
    junk = client.get("/api/v1/audit?from=yesterday", headers=auth(tokens.admin))
    assert "from" in assert_problem(junk, 422)["errors"]


def test_the_trail_pages_newest_first_like_every_list(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    same = dt.datetime(2026, 11, 20, 8, tzinfo=dt.UTC)
    with runtime.session_factory() as session:
        for n in range(5):  # written in one instant: the id orders them
            audit.record(session, audit.SYSTEM, "test.same", detail={"n": n}, at=same)
        audit.record(session, audit.SYSTEM, "test.later", at=same + dt.timedelta(seconds=1))
        session.commit()
    first = trail(client, tokens, "?action=test.same&action=test.later&per_page=4")
    second = trail(client, tokens, "?action=test.same&action=test.later&per_page=4&page=2")
    assert (first["total"], first["page"], first["per_page"]) == (6, 1, 4)
    assert (second["total"], second["page"], len(second["items"])) == (6, 2, 2)
    shown = first["items"] + second["items"]
    assert shown[0]["action"] == "test.later"
    assert [e["detail"]["n"] for e in shown[1:]] == [4, 3, 2, 1, 0]
    ids = [e["id"] for e in shown]
    assert ids == sorted(ids, reverse=True)
    assert_problem(client.get("/api/v1/audit?per_page=201", headers=auth(tokens.admin)), 422)


def test_reading_the_trail_is_recorded_with_the_filter_used(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    panel_id = uuid.uuid4()
    before = newest_id(runtime)
    trail(client, tokens, f"?panel_id={panel_id}&action=panel.read&from=2026-11-20")
    read = one_event(runtime, before)
    assert (read.action, read.role, read.address) == ("audit.read", "admin", HTTP)
    assert read.panel_id is None  # a search of a panel's trail is not an event of the panel
    assert read.detail == {
        "filter": {
            "panel_id": str(panel_id),
            "actions": ["panel.read"],
            "since": "2026-11-20T00:00:00+00:00",
        },
        "page": 1,
        "total": 0,
    }
    # not on the page it describes, and listed by the next read
    assert trail(client, tokens, "?action=audit.read")["items"][0]["id"] == read.id


def test_the_endpoint_is_documented_by_the_schema_that_serialises_it(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    get = spec["paths"]["/api/v1/audit"]["get"]
    names = {p["name"] for p in get["parameters"]}
    assert {"panel_id", "actor", "action", "from", "to", "page", "per_page"} <= names
    page = get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    item = spec["components"]["schemas"][page.rsplit("/", 1)[-1]]["properties"]["items"]
    event_schema = spec["components"]["schemas"][item["items"]["$ref"].rsplit("/", 1)[-1]]
    assert list(event_schema["properties"]) == [
        "id",
        "at",
        "actor",
        "role",
        "action",
        "clinic_id",
        "panel_id",
        "panel_ids",
        "address",
        "token_id",
        "detail",
    ]
    assert "403" in get["responses"]
