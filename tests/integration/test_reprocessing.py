"""Re-processing jobs on PostgreSQL, worked chunk by chunk as the worker's tasks do: exactly
the changes 2026.2 makes to 2026.1's interpretations, every earlier interpretation kept, the
dry run counting what the real run does, the review queue told only of panels whose findings
changed, a failed panel counted with its reason, a cancelled job stopped."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from labinterp.config import load_settings
from labinterp.db import upgrade_database
from labinterp.models import Decision, Interpretation, Panel, ReprocessingJob, Result, ReviewStatus
from labinterp.runtime import Runtime, build_runtime
from labinterp.schemas.panels import PanelIn
from labinterp.services import reprocessing
from labinterp.services.accounts import create_clinic
from labinterp.services.audit import Actor
from labinterp.services.interpretation import interpret_panels
from labinterp.services.panels import ClinicRef, submit_panel
from labinterp.services.review import submit_review
from tests.integration.reprocessing_data import ADULT, EDGES, load_edges
from tests.integration.services import fresh_postgres_database

pytestmark = [pytest.mark.postgres]

ADMIN = Actor(name="admin:test", role="admin")


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with fresh_postgres_database() as url:
        settings = load_settings(
            {"DATABASE_URL": url, "LABINTERP_INSTANCE": str(tmp_path / "instance")}
        )
        upgrade_database(settings.database_url)
        runtime = build_runtime(settings)
        yield runtime
        runtime.engine.dispose()


def planned(
    runtime: Runtime, dry_run: bool = False, chunk_size: int = 4
) -> tuple[uuid.UUID, list[int]]:
    """A 2026.2 job over every panel, created and planned: (its id, its chunks' numbers)."""
    with runtime.session_factory() as session:
        job_id = reprocessing.create_job(
            session,
            ADMIN,
            runtime.rulesets,
            reprocessing.JobRequest("2026.2", dry_run),
            dt.datetime.now(dt.UTC),
        ).id
    return job_id, reprocessing.plan_job(runtime.engine, runtime.rulesets, job_id, chunk_size)


def run(runtime: Runtime, dry_run: bool, chunk_size: int = 4) -> ReprocessingJob:
    """A job over every panel, planned and worked chunk by chunk; the job as it ended."""
    job_id, seqs = planned(runtime, dry_run, chunk_size)
    for seq in seqs:
        outcome = reprocessing.run_chunk(runtime.engine, runtime.rulesets, job_id, seq)
        assert outcome.state == "done", outcome
    with runtime.session_factory() as session:
        ended = reprocessing.get_job(session, job_id)
        session.expunge(ended)
    return ended


def counts(job: ReprocessingJob) -> dict[str, object]:
    summary = dict(job.summary or {})
    summary.pop("samples")
    return {"total": job.total, "changed": job.changed, "failed": job.failed, **summary}


def test_2026_2_changes_exactly_the_magnesium_and_vitamin_d_edges_and_the_dry_run_foresaw_it(
    runtime: Runtime,
) -> None:
    ids = load_edges(runtime)
    accession = {panel_id: name for name, panel_id in ids.items()}
    with runtime.session_factory() as session:
        before = set(session.scalars(select(Interpretation.id)))

    dry = run(runtime, dry_run=True)
    with runtime.session_factory() as session:
        assert set(session.scalars(select(Interpretation.id))) == before, "a dry run writes none"
    real = run(runtime, dry_run=False)

    assert dry.status == real.status == "done"
    assert counts(dry) == counts(real)
    changed = {e.name for e in EDGES if e.changed}
    assert real.changed == len(changed) and real.total == len(EDGES) and real.failed == 0
    summary = real.summary or {}
    assert summary["newly_flagged"] == sum(e.newly_flagged for e in EDGES)
    assert (summary["cleared"], summary["priority_changed"]) == (0, 0)
    expected_codes: dict[str, dict[str, int]] = {}
    for edge in EDGES:
        for code in edge.gained:
            expected_codes.setdefault(code, {"gained": 0, "lost": 0})["gained"] += 1
        for code in edge.lost:
            expected_codes.setdefault(code, {"gained": 0, "lost": 0})["lost"] += 1
    assert summary["by_code"] == expected_codes
    assert {accession[uuid.UUID(i)] for i in summary["samples"]["changed"]} <= {
        f"{name}#0" for name in changed
    }

    with runtime.session_factory() as session:
        rows = session.execute(
            select(Interpretation.panel_id, Interpretation.ruleset, Interpretation.job_id)
        ).all()
        # every 2026.1 interpretation is still there, and one 2026.2 row per panel of the job
        assert before <= set(session.scalars(select(Interpretation.id)))
        assert sorted(r.ruleset for r in rows if r.job_id is None) == ["2026.1"] * len(EDGES)
        mine = [r.panel_id for r in rows if r.job_id == real.id]
        assert sorted(mine) == sorted(ids.values())
        # each panel shows its 2026.2 interpretation, with the findings 2026.2 gives it
        for panel in session.scalars(select(Panel)):
            newest = session.get(Interpretation, panel.interpretation_id)
            assert newest is not None and newest.job_id == real.id
            edge = next(e for e in EDGES if f"{e.name}#0" == panel.accession)
            codes = set(panel.finding_codes or [])
            assert edge.gained <= codes and not (edge.lost & codes), panel.accession


def test_only_panels_whose_findings_changed_go_back_to_the_review_queue(runtime: Runtime) -> None:
    ids = load_edges(runtime)
    clinician = Actor(name="dr:test", role="clinician", clinic_ids=None)
    with runtime.session_factory() as session:
        for name in ("D-025#0", "D-030#0", "K-026#0"):  # unchanged, changed, unchanged
            submit_review(session, clinician, ids[name], Decision.ACKNOWLEDGED, None)
    run(runtime, dry_run=False)
    with runtime.session_factory() as session:
        status = {a: s for a, s in session.execute(select(Panel.accession, Panel.review_status))}
    assert status["D-025#0"] == status["K-026#0"] == ReviewStatus.REVIEWED
    assert status["D-030#0"] == ReviewStatus.PENDING  # insufficiency became deficiency
    assert status["MG-080#0"] == ReviewStatus.PENDING  # newly flagged
    assert status["MG-085#0"] is None  # normal under both: not in the queue


def test_a_panel_the_engine_refuses_is_counted_failed_with_its_reason_and_the_rest_go_on(
    runtime: Runtime,
) -> None:
    ids = load_edges(runtime)
    broken = ids["MG-080#0"]
    with runtime.engine.begin() as conn:  # a stored unit no ruleset knows (a hand-edited row)
        revision = conn.scalar(
            text("SELECT id FROM panel_revisions WHERE panel_id = :p"), {"p": broken}
        )
        conn.execute(
            update(Result).where(Result.revision_id == revision).values(reported_unit="furlongs")
        )
    job = run(runtime, dry_run=False)
    assert (job.status, job.processed, job.failed) == ("done", len(EDGES), 1)
    (failure,) = (job.summary or {})["failures"]
    assert failure["panel_id"] == str(broken) and "acceptance rules" in failure["reason"]
    with runtime.session_factory() as session:
        written = session.scalar(select(func.count()).where(Interpretation.job_id == job.id))
        panel = session.get(Panel, broken)
        assert panel is not None
        kept = session.get(Interpretation, panel.interpretation_id)
    assert written == len(EDGES) - 1
    assert kept is not None and kept.ruleset == "2026.1"  # its earlier one stays the newest


def test_a_cancelled_job_records_nothing_more_and_a_chunk_delivered_twice_takes_effect_once(
    runtime: Runtime,
) -> None:
    load_edges(runtime)
    job_id, seqs = planned(runtime)
    assert reprocessing.plan_job(runtime.engine, runtime.rulesets, job_id, 4) == []  # planned
    assert reprocessing.run_chunk(runtime.engine, runtime.rulesets, job_id, seqs[0]).state == "done"
    again = reprocessing.run_chunk(runtime.engine, runtime.rulesets, job_id, seqs[0])
    assert again.state == "already_done"
    with runtime.session_factory() as session:
        reprocessing.cancel_job(session, ADMIN, job_id, dt.datetime.now(dt.UTC))
    for seq in seqs[1:]:
        assert reprocessing.run_chunk(runtime.engine, runtime.rulesets, job_id, seq).state == (
            "not_running"
        )
    with runtime.session_factory() as session:
        job = reprocessing.get_job(session, job_id)
        written = session.scalar(select(func.count()).where(Interpretation.job_id == job_id))
        assert (job.status, job.processed, written) == ("cancelled", 4, 4)


def test_a_chunk_taken_up_too_often_without_finishing_fails_its_job_with_a_reason(
    runtime: Runtime,
) -> None:
    """A chunk whose worker dies every time (or whose statements keep failing) must not be
    sent again forever: after max_attempts takes, the job is `failed` and says why."""
    load_edges(runtime)
    job_id, seqs = planned(runtime)
    with runtime.engine.begin() as conn:  # three takes whose worker died before the commit
        for _ in range(3):
            reprocessing.repo.count_attempt(conn, job_id, seqs[1])
    outcome = reprocessing.run_chunk(
        runtime.engine, runtime.rulesets, job_id, seqs[1], max_attempts=3
    )
    assert outcome.state == "failed"
    with runtime.session_factory() as session:
        job = reprocessing.get_job(session, job_id)
        assert job.status == "failed" and job.error and "taken up 3 times" in job.error


def test_a_reprocessed_panel_still_shows_the_senders_flag_and_its_disagreement(
    runtime: Runtime,
) -> None:
    """A sodium of 138 that the sending laboratory flagged L inside its own 136-145 range: the
    interpretation a job writes says so, as the worker's did."""
    with runtime.session_factory() as session:
        found = create_clinic(session, "flags")
        clinic = ClinicRef(found.id, found.name)
    document = PanelIn().load(
        {
            "accession": "FLAG-1",
            "patient": {"id": "P-FLAG", "sex": "female", "birth_date": ADULT},
            "collected_at": "2025-03-01T08:30:00Z",
            "results": [
                {
                    "analyte": "sodium",
                    "value": 138,
                    "unit": "mmol/L",
                    "reference_range": {"low": 136, "high": 145},
                    "sender_flag": "L",
                },
                {"analyte": "magnesium", "value": 0.80, "unit": "mmol/L"},
            ],
        }
    )
    now = dt.datetime.now(dt.UTC)
    submitted = submit_panel(
        runtime.engine, ADMIN, clinic, document, runtime.rulesets["2026.1"], now
    )
    interpret_panels(runtime.engine, runtime.rulesets, [submitted.panel_id], max_attempts=5)

    real = run(runtime, dry_run=False)

    assert real.changed == 1  # the magnesium of 0.80 is low under 2026.2
    with runtime.session_factory() as session:
        panel = session.get(Panel, submitted.panel_id)
        assert panel is not None
        newest = session.get(Interpretation, panel.interpretation_id)
        assert newest is not None and newest.ruleset == "2026.2"
        sodium = next(r for r in newest.body["results"] if r["analyte"] == "sodium")
    assert sodium["sender_flag"] == "L"
    assert sodium["sender_flag_disagrees"] is True
    assert "disagrees" in newest.body["summary"]
