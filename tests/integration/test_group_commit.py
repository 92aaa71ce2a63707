"""Group commit of new panels on PostgreSQL (labinterp.repositories.new_panels.GroupCommit):
the panels of concurrent POSTs are written in one statement, each request still answered
after its own panel is committed, and a batch that cannot be written (an accession stored
already) goes panel by panel, so one bad panel never fails the others.

To make the batch certain rather than likely, a transaction of the test holds the patient row
the first POST upserts: that POST's write (the leader's) waits on it while every other POST
queues behind it; once all are waiting, the transaction ends and the next leader writes the
queue together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from labinterp.repositories import new_panels
from labinterp.runtime import Runtime
from tests.api.conftest import auth, clinic_app, sample_panel
from tests.integration.services import fresh_postgres_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def posting(tmp_path: Path) -> Iterator[tuple[Runtime, Any, str]]:
    with fresh_postgres_database() as database_url:
        env = {
            "DATABASE_URL": database_url,
            "LABINTERP_INSTANCE": str(tmp_path / "instance"),
            "LABINTERP_RATE_LIMIT": "0",
        }
        runtime, client, token = clinic_app(env, "group-clinic")
        yield runtime, client.application, token
        runtime.engine.dispose()


def _panel(accession: str, patient: str, magnesium: float = 1.1) -> dict[str, Any]:
    body = sample_panel(accession=accession)
    body["patient"] = {**body["patient"], "id": patient}
    body["results"][0]["value"] = magnesium
    return body


def _group(runtime: Runtime) -> new_panels.GroupCommit:
    return new_panels._group_commit(runtime.engine)


def _post_behind_a_held_patient(
    runtime: Runtime, app: Any, token: str, first: dict[str, Any], rest: list[dict[str, Any]]
) -> tuple[int, list[Any]]:
    """POST ``first`` while a transaction holds its patient's row (so its write waits), then
    every body of ``rest`` from its own thread; release the row once all of them queue
    behind it. The first answer's status, and the others' responses in order."""
    engine: Engine = runtime.engine
    with engine.connect() as conn:
        clinic_id = conn.execute(text("SELECT id FROM clinics")).scalar_one()
    group = _group(runtime)
    holder = engine.connect()
    holder.execute(
        text(
            "INSERT INTO patients (id, clinic_id, external_id, sex, created_at, updated_at) "
            "VALUES (gen_random_uuid(), :clinic, :patient, 'unknown', now(), now())"
        ),
        {"clinic": clinic_id, "patient": first["patient"]["id"]},
    )  # uncommitted: the first POST's upsert of this patient waits for it
    answers: list[Any] = [None] * len(rest)
    first_answer: list[int] = []

    def post(index: int, body: dict[str, Any]) -> None:
        response = app.test_client().post("/api/v1/panels", json=body, headers=auth(token))
        if index < 0:
            first_answer.append(response.status_code)
        else:
            answers[index] = response

    threads = [threading.Thread(target=post, args=(-1, first))]
    threads[0].start()
    deadline = time.monotonic() + 30
    while not group._leading and time.monotonic() < deadline:  # the first POST is writing
        time.sleep(0.01)
    threads += [threading.Thread(target=post, args=(n, body)) for n, body in enumerate(rest)]
    for thread in threads[1:]:
        thread.start()
    valid = sum(1 for body in rest if body.get("results"))  # an invalid one never queues
    while len(group._waiting) < valid and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(group._waiting) == valid, "the POSTs did not queue behind the first"
    assert first_answer == [], "the first POST did not wait for the held patient"
    holder.rollback()  # the leader's write goes on
    holder.close()
    for thread in threads:
        thread.join(60)
    return first_answer[0], answers


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_concurrent_posts_are_written_together_and_each_answered_as_if_alone(posting):
    runtime, app, token = posting
    client = app.test_client()
    stored_before = client.post(
        "/api/v1/panels", json=_panel("GC-STORED", "GC-P-0"), headers=auth(token)
    )
    assert stored_before.status_code == 202
    before = new_panels.recent_batches()
    first = _panel("GC-FIRST", "GC-P-HELD")
    fresh = [_panel(f"GC-{n}", f"GC-P-{n}") for n in range(1, 7)]
    fresh[2]["results"][0]["sender_flag"] = "L"  # kept verbatim by the batch's statement too
    same_patient = _panel("GC-SAME-PATIENT", "GC-P-1", magnesium=1.6)  # GC-1's patient
    twice = [_panel("GC-TWICE", "GC-P-T"), _panel("GC-TWICE", "GC-P-T")]  # one accession, twice
    invalid = {**_panel("GC-INVALID", "GC-P-X"), "results": []}
    status, answers = _post_behind_a_held_patient(
        runtime, app, token, first, [*fresh, same_patient, *twice, invalid]
    )

    assert status == 202
    codes = [response.status_code for response in answers]
    assert codes[:7] == [202] * 7, [r.get_json() for r in answers[:7]]
    assert sorted(codes[7:9]) == [200, 202]  # the second of the same content: the first panel
    assert answers[7].get_json()["id"] == answers[8].get_json()["id"]
    assert codes[9] == 422 and "results" in answers[9].get_json()["errors"]
    for body, response in zip([*fresh, same_patient], answers, strict=False):
        document = response.get_json()
        assert document["accession"] == body["accession"] and document["status"] == "queued"
        assert response.headers["Location"] == f"/api/v1/panels/{document['id']}"
        read = client.get(response.headers["Location"], headers=auth(token)).get_json()
        assert read["patient"]["id"] == body["patient"]["id"]
        assert str(read["results"][0]["reported"]["value"]) == str(body["results"][0]["value"])
        assert read["results"][0]["sender_flag"] == body["results"][0].get("sender_flag")

    engine = runtime.engine
    # GC-STORED, GC-FIRST, six fresh, GC-SAME-PATIENT, GC-TWICE: nothing lost, nothing twice
    assert _count(engine, "SELECT count(*) FROM panels") == 10
    assert _count(engine, "SELECT count(*) FROM panel_revisions") == 10
    assert _count(engine, "SELECT count(*) FROM panel_contexts") == 10
    assert _count(engine, "SELECT count(*) FROM results") == 10 * len(first["results"])
    assert _count(engine, "SELECT count(*) FROM audit_events WHERE action = 'panel.create'") == 10
    assert _count(engine, "SELECT count(*) FROM patients WHERE external_id = 'GC-P-1'") == 1
    batches = new_panels.recent_batches()[len(before) :]
    print(f"batches (panels, written) from the held write on: {batches}")
    # the first alone; the queue in one statement: the six fresh panels and one GC-TWICE (the
    # second GC-TWICE and GC-1's patient's second panel wait for the next batch, which meets
    # GC-TWICE stored and goes panel by panel)
    assert batches == [(1, True), (7, True), (2, False)], batches


def test_a_batch_with_an_accession_stored_already_goes_panel_by_panel(posting):
    runtime, app, token = posting
    client = app.test_client()
    stored = _panel("GC-OLD", "GC-P-OLD")
    changed = _panel("GC-CHANGED", "GC-P-CH")
    for body in (stored, changed):
        assert client.post("/api/v1/panels", json=body, headers=auth(token)).status_code == 202
    before = new_panels.recent_batches()
    fresh = [_panel(f"GC-NEW-{n}", f"GC-P-NEW-{n}") for n in range(4)]
    conflicting = _panel("GC-CHANGED", "GC-P-CH", magnesium=2.2)  # other content: 409
    status, answers = _post_behind_a_held_patient(
        runtime, app, token, _panel("GC-LEAD", "GC-P-LEAD"), [*fresh, stored, conflicting]
    )

    assert status == 202
    assert [r.status_code for r in answers] == [202, 202, 202, 202, 200, 409]
    assert answers[5].get_json()["differences"] == ["results[magnesium].value"]
    engine = runtime.engine
    assert _count(engine, "SELECT count(*) FROM panels") == 7  # 2 before, the leader's, 4 new
    assert _count(engine, "SELECT count(*) FROM panel_revisions") == 7
    assert _count(engine, "SELECT count(*) FROM audit_events WHERE action = 'panel.create'") == 7
    # the queued batch failed on GC-OLD (one statement: nothing of it was written); each
    # of its panels then went on its own
    batches = new_panels.recent_batches()[len(before) :]
    print(f"batches (panels, written) from the held write on: {batches}")
    assert batches == [(1, True), (6, False)], batches


def test_the_leaders_own_connection_lost_costs_no_panel(posting):
    """The group commit writes on one connection of its own, kept out of the pool. When the
    server ends it (a restart, an administrator, a network cut), the next POST is still
    answered 202 with its panel stored (written again on a new connection), and the pool
    keeps every connection for everyone else."""
    runtime, app, token = posting
    client = app.test_client()
    first = client.post("/api/v1/panels", json=_panel("GC-W-1", "GC-P-W1"), headers=auth(token))
    assert first.status_code == 202
    engine = runtime.engine
    pids = _count(
        engine, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    )
    with engine.connect() as conn:
        ended = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    assert ended >= 1, pids  # the writer's connection among them

    second = client.post("/api/v1/panels", json=_panel("GC-W-2", "GC-P-W2"), headers=auth(token))
    assert second.status_code == 202, second.get_json()
    third = client.post("/api/v1/panels", json=_panel("GC-W-3", "GC-P-W3"), headers=auth(token))
    assert third.status_code == 202, third.get_json()
    accessions = {"GC-W-1", "GC-W-2", "GC-W-3"}
    with engine.connect() as conn:
        stored = set(conn.execute(text("SELECT accession FROM panels")).scalars())
    assert stored == accessions
    assert engine.pool.checkedout() == 0
