"""POST/GET /api/v1/reprocessing-jobs and cancel (API.md "Rulesets and reprocessing"): admin
only, 202 with the job and its Location, 422 naming the field, 409 for an overlapping job,
paginated like every list, audited. The job's work is the worker's (run here as its tasks
do, one service call each)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from labinterp.models import AuditEvent
from labinterp.runtime import Runtime
from labinterp.services import reprocessing
from tests.api.conftest import Tokens, assert_problem, auth, sample_panel

JOBS = "/api/v1/reprocessing-jobs"


def run_job(runtime: Runtime, job_id: str) -> None:
    """The plan task, then each chunk task, as a worker would run them."""
    seqs = reprocessing.plan_job(runtime.engine, runtime.rulesets, uuid.UUID(job_id), 2)
    for seq in seqs:
        reprocessing.run_chunk(runtime.engine, runtime.rulesets, uuid.UUID(job_id), seq)


def interpreted_panels(client: FlaskClient, tokens: Tokens, work: Any, count: int) -> list[str]:
    ids = []
    for n in range(count):
        answer = client.post(
            "/api/v1/panels",
            json=sample_panel(accession=f"R-{n}"),
            headers=auth(tokens.clinic),
        )
        assert answer.status_code == 202, answer.get_json()
        ids.append(answer.get_json()["id"])
    work(*ids)
    return ids


def test_an_admin_starts_a_dry_run_reads_its_progress_and_finds_it_in_the_list(
    client: FlaskClient, tokens: Tokens, runtime: Runtime, work: Any
) -> None:
    interpreted_panels(client, tokens, work, 5)
    answer = client.post(
        JOBS,
        json={"ruleset": "2026.2", "dry_run": True, "filter": {"clinic": "north"}},
        headers=auth(tokens.admin),
    )
    assert answer.status_code == 202, answer.get_json()
    job = answer.get_json()
    assert answer.headers["Location"] == f"{JOBS}/{job['id']}"
    assert (job["status"], job["ruleset"], job["dry_run"]) == ("queued", "2026.2", True)
    assert job["filter"] == {"clinic": "north", "collected_from": None, "collected_to": None}

    run_job(runtime, job["id"])
    done = client.get(f"{JOBS}/{job['id']}", headers=auth(tokens.admin)).get_json()
    assert (done["status"], done["total"], done["processed"], done["failed"]) == (
        "done",
        5,
        5,
        0,
    )
    assert set(done["summary"]) >= {
        "newly_flagged",
        "cleared",
        "severity_changed",
        "priority_changed",
        "by_code",
        "samples",
    }

    listed = client.get(f"{JOBS}?per_page=1", headers=auth(tokens.admin)).get_json()
    assert (listed["total"], listed["page"], listed["per_page"]) == (1, 1, 1)
    assert [item["id"] for item in listed["items"]] == [job["id"]]


def test_an_unknown_ruleset_or_clinic_is_a_422_naming_the_field(
    client: FlaskClient, tokens: Tokens
) -> None:
    answer = client.post(JOBS, json={"ruleset": "1999.9"}, headers=auth(tokens.admin))
    body = assert_problem(answer, 422)
    assert "2026.2" in " ".join(body["errors"]["ruleset"])  # it names the known versions
    answer = client.post(
        JOBS, json={"ruleset": "2026.2", "filter": {"clinic": "east"}}, headers=auth(tokens.admin)
    )
    assert "filter.clinic" in assert_problem(answer, 422)["errors"]
    answer = client.post(
        JOBS,
        json={
            "ruleset": "2026.2",
            "filter": {"collected_from": "2026-02-01", "collected_to": "2026-01-01"},
        },
        headers=auth(tokens.admin),
    )
    assert "filter.collected_to" in assert_problem(answer, 422)["errors"]
    assert (
        "ruleset"
        in assert_problem(client.post(JOBS, json={}, headers=auth(tokens.admin)), 422)["errors"]
    )


def test_only_an_admin_may_start_read_or_cancel_jobs(client: FlaskClient, tokens: Tokens) -> None:
    for token in (tokens.clinic, tokens.clinician):
        assert_problem(client.post(JOBS, json={"ruleset": "2026.2"}, headers=auth(token)), 403)
        assert_problem(client.get(JOBS, headers=auth(token)), 403)
    assert_problem(client.get(f"{JOBS}/{uuid.uuid4()}", headers=auth(tokens.admin)), 404)


def test_a_real_run_overlapping_an_active_job_is_refused_409_and_cancel_frees_the_panels(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    """Two jobs on the same panels never interleave: a second one is refused while the first
    is queued or running (unless both are dry runs, which write nothing); other clinics'
    panels, or another window, are free."""
    admin = auth(tokens.admin)
    first = client.post(
        JOBS,
        json={"ruleset": "2026.2", "filter": {"collected_to": "2025-12-31"}},
        headers=admin,
    ).get_json()
    overlapping = client.post(
        JOBS, json={"ruleset": "2026.2", "filter": {"clinic": "north"}}, headers=admin
    )
    problem = assert_problem(overlapping, 409)
    assert problem["type"].endswith("state-conflict") and problem["job_id"] == first["id"]
    dry = client.post(JOBS, json={"ruleset": "2026.2", "dry_run": True}, headers=admin)
    assert_problem(dry, 409)  # a dry run beside a real run would count a moving target
    later = client.post(
        JOBS,
        json={"ruleset": "2026.2", "filter": {"collected_from": "2026-01-01"}},
        headers=admin,
    )
    assert later.status_code == 202, later.get_json()

    cancelled = client.post(f"{JOBS}/{first['id']}/cancel", headers=admin)
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    again = client.post(f"{JOBS}/{first['id']}/cancel", headers=admin)
    assert again.status_code == 200 and again.get_json()["status"] == "cancelled"
    assert (
        client.post(
            JOBS,
            json={"ruleset": "2026.2", "filter": {"collected_to": "2025-06-30"}},
            headers=admin,
        ).status_code
        == 202
    )

    with runtime.session_factory() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("reprocessing.%"))
        ).all()
    assert sorted(actions) == ["reprocessing.cancel"] + ["reprocessing.create"] * 3


def test_a_finished_job_cannot_be_cancelled(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    job = client.post(JOBS, json={"ruleset": "2026.2"}, headers=auth(tokens.admin)).get_json()
    run_job(runtime, job["id"])  # no panels: done at once
    answer = client.post(f"{JOBS}/{job['id']}/cancel", headers=auth(tokens.admin))
    assert "done" in assert_problem(answer, 409)["detail"]
