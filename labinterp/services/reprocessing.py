"""Re-processing jobs: interpret stored panels again under another ruleset, or count what
that would change (a dry run).

A job goes through three kinds of unit of work, each one transaction:

* :func:`create_job` (the API, the CLI): the job, `queued`, and its audit event. Refused with
  409 when a job whose panels could be the same is queued or running and either of the two
  writes (a dry run beside a dry run is harmless): two jobs never interleave on a panel.
* :func:`plan_job` (a task): the matching panels cut into chunks of ids (keyset ranges), the
  job `running` with its ``total``; the caller then publishes one task per chunk.
* :func:`run_chunk` (a task per chunk): the chunk's panels read set-based, judged by the pure
  engine under the job's ruleset, compared with each panel's newest interpretation; on a real
  run the new interpretations written in bulk (COPY on PostgreSQL, one multi-row INSERT
  elsewhere; never an update of an earlier one), each made its panel's newest (the review
  queue's state with it: a panel whose significance changed goes back to `pending`), and the
  job's progress and summary, all in one transaction. Idempotency key: the chunk (its
  ``done_at``, set in that transaction, its row locked while it is worked), and (job, panel)
  in the database: a chunk delivered twice, or redone after its worker was killed, takes
  effect once.

A cancelled job stops within one chunk: a chunk that finds its job cancelled when it comes to
record its progress rolls back. A panel the engine cannot judge is counted `failed` with a
reason (a sample of them in the summary) and does not stop the job.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.orm import Session

from labinterp.db import write_transaction
from labinterp.domain import FindingStatus, PanelRejected, Ruleset, accept_panel, interpret
from labinterp.domain.disagreements import with_sender_flags
from labinterp.ids import new_id
from labinterp.models import Clinic, JobStatus, ReprocessingJob
from labinterp.redaction import describe_exception
from labinterp.repositories import interpretations as interpretations_repo
from labinterp.repositories import reprocessing as repo
from labinterp.repositories.dialects import dialect_name
from labinterp.repositories.interpretations import NewInterpretation, StoredRevision
from labinterp.repositories.reprocessing import Newest, PanelFilter
from labinterp.services import audit
from labinterp.services.audit import Actor
from labinterp.services.dispatch import Dispatcher
from labinterp.services.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]

SAMPLES = 5  # panel ids kept per kind of change
FAILURE_SAMPLES = 20  # failed panels kept with their reason
KINDS = ("changed", "newly_flagged", "cleared", "severity_changed", "priority_changed")
_ADVISORY_LOCK = 0x7265_7072  # "repr": job creations take turns on PostgreSQL


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def empty_summary() -> dict[str, Any]:
    return {
        "newly_flagged": 0,
        "cleared": 0,
        "severity_changed": 0,
        "priority_changed": 0,
        "by_code": {},
        "samples": {kind: [] for kind in KINDS},
        "failures": [],
    }


# --- creating, reading, cancelling -----------------------------------------------------------


@dataclass(frozen=True)
class JobRequest:
    ruleset: str
    dry_run: bool
    clinic: str | None = None
    collected_from: dt.datetime | None = None
    collected_to: dt.datetime | None = None


def create_job(
    session: Session,
    actor: Actor,
    rulesets: Mapping[str, Ruleset],
    request: JobRequest,
    now: dt.datetime,
) -> ReprocessingJob:
    """A job, `queued`; the caller publishes its plan task after this returns (the sweeper
    publishes it again if that message is lost). One transaction with its audit event
    (``reprocessing.create``). 422 naming the field for an unknown ruleset or clinic or an
    empty window; 409 (state conflict) when an active job could touch the same panels and
    either of them writes."""
    errors: dict[str, list[str]] = {}
    if request.ruleset not in rulesets:
        errors["ruleset"] = [
            f"unknown ruleset {request.ruleset!r}; the known versions are "
            f"{', '.join(sorted(rulesets))}"
        ]
    clinic_id = None
    if request.clinic is not None:
        clinic_id = session.scalar(select(Clinic.id).where(Clinic.name == request.clinic))
        if clinic_id is None:
            errors["filter.clinic"] = [f"no clinic named {request.clinic!r}"]
    if (
        request.collected_from is not None
        and request.collected_to is not None
        and request.collected_to < request.collected_from
    ):
        errors["filter.collected_to"] = ["must not be before filter.collected_from"]
    if errors:
        raise InvalidInput(errors)
    wanted = PanelFilter(clinic_id, request.collected_from, request.collected_to, now)
    if dialect_name(session) == "postgresql":  # two creations at once: one waits, then sees
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
    for other in session.scalars(
        select(ReprocessingJob).where(
            ReprocessingJob.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value])
        )
    ):
        if (request.dry_run and other.dry_run) or not panel_filter(other).overlaps(wanted):
            continue
        raise Conflict(
            f"reprocessing job {other.id} ({'dry run' if other.dry_run else 'real run'} of "
            f"ruleset {other.ruleset}, {other.status}) may touch the same panels; wait for it "
            f"to finish or cancel it (POST /api/v1/reprocessing-jobs/{other.id}/cancel)",
            extra={"job_id": str(other.id)},
        )
    job = ReprocessingJob(
        id=new_id(),
        ruleset=request.ruleset,
        dry_run=request.dry_run,
        filter={
            "clinic": request.clinic,
            "clinic_id": None if clinic_id is None else str(clinic_id),
            "collected_from": _iso(request.collected_from),
            "collected_to": _iso(request.collected_to),
        },
        status=JobStatus.QUEUED.value,
        total=0,
        processed=0,
        changed=0,
        failed=0,
        summary=empty_summary(),
        created_at=now,
        created_by=actor.name,
        dispatched_at=now,
    )
    session.add(job)
    audit.record(
        session,
        actor,
        "reprocessing.create",
        clinic_id=clinic_id,
        detail={"job_id": str(job.id), "ruleset": job.ruleset, "dry_run": job.dry_run},
        at=now,
    )
    session.commit()
    return job


def start_job(
    session: Session,
    dispatcher: Dispatcher,
    actor: Actor,
    rulesets: Mapping[str, Ruleset],
    request: JobRequest,
    now: dt.datetime,
) -> ReprocessingJob:
    """:func:`create_job`, then (after its commit) its plan task published; a plan that
    could not be sent is sent by the sweeper."""
    job = create_job(session, actor, rulesets, request, now)
    dispatcher.publish_reprocessing([job.id], enqueued_at=now.timestamp())
    return job


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat()


def panel_filter(job: Any) -> PanelFilter:
    """The panels a job (a model or a row of its table) re-processes."""
    stored = job.filter or {}

    def moment(key: str) -> dt.datetime | None:
        value = stored.get(key)
        return None if value is None else dt.datetime.fromisoformat(value)

    created = job.created_at if job.created_at.tzinfo else job.created_at.replace(tzinfo=dt.UTC)
    clinic = stored.get("clinic_id")
    return PanelFilter(
        None if clinic is None else uuid.UUID(clinic),
        moment("collected_from"),
        moment("collected_to"),
        created,
    )


def get_job(session: Session, job_id: uuid.UUID) -> ReprocessingJob:
    job = session.get(ReprocessingJob, job_id)
    if job is None:
        raise NotFound(f"reprocessing job {job_id}")
    return job


@dataclass(frozen=True)
class JobPage:
    items: list[ReprocessingJob]
    total: int


def list_jobs(session: Session, page: int, per_page: int) -> JobPage:
    """Every job, newest first."""
    total = session.scalar(select(func.count()).select_from(ReprocessingJob)) or 0
    items = session.scalars(
        select(ReprocessingJob)
        .order_by(ReprocessingJob.created_at.desc(), ReprocessingJob.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return JobPage(list(items), int(total))


def cancel_job(
    session: Session, actor: Actor, job_id: uuid.UUID, now: dt.datetime
) -> ReprocessingJob:
    """Stop a queued or running job: no chunk records anything after this commits (one being
    worked rolls back). Cancelling a cancelled job changes nothing; a job that has finished
    cannot be cancelled (409). Audited as ``reprocessing.cancel``."""
    job = session.get(ReprocessingJob, job_id, with_for_update=True)
    if job is None:
        raise NotFound(f"reprocessing job {job_id}")
    if job.status == JobStatus.CANCELLED:
        return job
    if not JobStatus(job.status).active:
        raise Conflict(
            f"reprocessing job {job_id} is {job.status}: there is nothing left to cancel",
            extra={"job_id": str(job_id), "job_status": job.status},
        )
    job.status = JobStatus.CANCELLED.value
    job.finished_at = now
    audit.record(
        session,
        actor,
        "reprocessing.cancel",
        detail={"job_id": str(job_id), "processed": job.processed, "total": job.total},
        at=now,
    )
    session.commit()
    return job


# --- planning ---------------------------------------------------------------------------------


def plan_job(
    engine: Engine,
    rulesets: Mapping[str, Ruleset],
    job_id: uuid.UUID,
    chunk_size: int,
    clock: Clock = _utcnow,
) -> list[int]:
    """Cut a `queued` job's panels into chunks and make it `running` (`done` at once when no
    panel matches); returns the chunks to publish. One transaction. Idempotent: a job no
    longer `queued` (planned already, cancelled) returns []."""
    with write_transaction(engine) as conn:
        job = repo.lock_job(conn, job_id)
        if job is None or job.status != JobStatus.QUEUED:
            return []
        now = clock()
        if job.ruleset not in rulesets:
            repo.update_job(
                conn,
                job_id,
                status=JobStatus.FAILED.value,
                finished_at=now,
                error=f"ruleset {job.ruleset} is not installed where the job was taken up; "
                "install it on every worker and start the job again",
            )
            return []
        chunks = repo.plan_chunks(conn, panel_filter(job), chunk_size)
        repo.store_chunks(conn, job_id, chunks, now)
        total = sum(c.panels for c in chunks)
        repo.update_job(
            conn,
            job_id,
            status=(JobStatus.RUNNING if chunks else JobStatus.DONE).value,
            total=total,
            started_at=now,
            finished_at=None if chunks else now,
        )
    log.info("reprocessing job %s: %d panel(s) in %d chunk(s)", job_id, total, len(chunks))
    return [c.seq for c in chunks]


# --- one chunk ------------------------------------------------------------------------------


@dataclass
class ChunkImpact:
    """What a chunk's new interpretations change, merged into the job's summary."""

    processed: int = 0
    changed: int = 0
    failed: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    gained: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    failures: list[dict[str, str]] = field(default_factory=list)

    def note(self, kind: str, panel_id: uuid.UUID) -> None:
        if kind != "changed":
            self.counts[kind] += 1
        if len(self.samples[kind]) < SAMPLES:
            self.samples[kind].append(str(panel_id))

    def merged_into(self, summary: Mapping[str, Any] | None) -> dict[str, Any]:
        merged = empty_summary()
        if summary:
            merged.update({k: v for k, v in summary.items() if k in merged})
        for kind in ("newly_flagged", "cleared", "severity_changed", "priority_changed"):
            merged[kind] = int(merged[kind]) + self.counts[kind]
        by_code = {code: dict(v) for code, v in (merged["by_code"] or {}).items()}
        for code in set(self.gained) | set(self.lost):
            entry = by_code.setdefault(code, {"gained": 0, "lost": 0})
            entry["gained"] += self.gained[code]
            entry["lost"] += self.lost[code]
        merged["by_code"] = dict(sorted(by_code.items()))
        samples = {kind: list((merged["samples"] or {}).get(kind, [])) for kind in KINDS}
        for kind in KINDS:
            samples[kind] = (samples[kind] + self.samples[kind])[:SAMPLES]
        merged["samples"] = samples
        merged["failures"] = (list(merged["failures"] or []) + self.failures)[:FAILURE_SAMPLES]
        return merged


def compare(panel_id: uuid.UUID, old: Newest, new: Mapping[str, Any], impact: ChunkImpact) -> None:
    """Count how the new interpretation ``new`` differs from the panel's newest, ``old``:
    changed (finding codes, a finding's grade or severity, or the priority: API.md), newly
    flagged (normal to flagged), cleared (flagged to normal), severity and priority changed,
    and the finding codes gained and lost."""
    before = _graded(old.findings)
    after = _graded(new.get("findings", []))
    priority_changed = old.priority != new["priority"]
    if before != after or priority_changed:
        impact.changed += 1
        impact.note("changed", panel_id)
    if old.status == FindingStatus.NORMAL and new["status"] == FindingStatus.FLAGGED:
        impact.note("newly_flagged", panel_id)
    if old.status == FindingStatus.FLAGGED and new["status"] == FindingStatus.NORMAL:
        impact.note("cleared", panel_id)
    if priority_changed:
        impact.note("priority_changed", panel_id)
    old_codes = {code for code, _, _ in before}
    new_codes = {code for code, _, _ in after}
    impact.gained.update(new_codes - old_codes)
    impact.lost.update(old_codes - new_codes)
    kept = old_codes & new_codes
    if any(
        sorted(g for g in before if g[0] == code) != sorted(g for g in after if g[0] == code)
        for code in kept
    ):
        impact.note("severity_changed", panel_id)


def _graded(findings: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((str(f["code"]), str(f.get("grade")), str(f.get("severity"))) for f in findings)


@dataclass(frozen=True)
class ChunkOutcome:
    state: str  # done, already_done, not_running, cancelled, failed (too many attempts)
    impact: ChunkImpact | None = None
    job_status: str | None = None


class _CancelledMeanwhile(Exception):
    """The job was cancelled while this chunk was being worked: roll the chunk back."""


def run_chunk(
    engine: Engine,
    rulesets: Mapping[str, Ruleset],
    job_id: uuid.UUID,
    seq: int,
    clock: Clock = _utcnow,
    max_attempts: int = 5,
) -> ChunkOutcome:
    """Work one chunk of a running job, in one transaction (see the module's docstring).
    Idempotent on (job, chunk): a chunk done already, or of a job no longer running, does
    nothing.

    Each take is counted first, in a transaction of its own: a chunk taken up
    ``max_attempts`` times without finishing (its worker killed, the database failing each
    time) fails its job, with a reason, rather than being sent again forever."""
    with write_transaction(engine) as conn:
        attempts = repo.count_attempt(conn, job_id, seq)
        if attempts is None:
            return ChunkOutcome("already_done")
        if attempts > max_attempts:
            chunk = repo.lock_chunk(conn, job_id, seq)
            first = "" if chunk is None else f" (panels from id {chunk.first_id})"
            job = repo.lock_job(conn, job_id)
            if job is not None and job.status == JobStatus.RUNNING:
                repo.update_job(
                    conn,
                    job_id,
                    status=JobStatus.FAILED.value,
                    finished_at=clock(),
                    error=f"chunk {seq}{first} was taken up {attempts - 1} times without "
                    "finishing (its worker stopped, or the database failed, each time; the "
                    "workers' log says why); what the other chunks did stays",
                )
            return ChunkOutcome("failed", job_status=JobStatus.FAILED.value)
    try:
        with write_transaction(engine) as conn:
            chunk = repo.lock_chunk(conn, job_id, seq)
            if chunk is None:
                return ChunkOutcome("already_done")
            job = repo.read_job(conn, job_id)
            if job is None or job.status != JobStatus.RUNNING:
                return ChunkOutcome("not_running")
            ruleset = rulesets.get(job.ruleset)
            if ruleset is None:
                raise RuntimeError(f"ruleset {job.ruleset} is not installed on this worker")
            revisions, newest = repo.chunk_revisions(conn, chunk, panel_filter(job))
            impact = ChunkImpact()
            fresh = _judge_all(revisions, newest, ruleset, impact)
            now = clock()
            if not job.dry_run:
                stored = repo.store_job_interpretations(conn, job_id, fresh, now)
                interpretations_repo.show_newest(conn, stored)
            repo.finish_chunk(conn, job_id, seq, now)
            status = _record_progress(conn, job_id, impact, now)
    except _CancelledMeanwhile:
        return ChunkOutcome("cancelled")
    return ChunkOutcome("done", impact, status)


def _judge_all(
    revisions: Sequence[StoredRevision],
    newest: Mapping[uuid.UUID, Newest],
    ruleset: Ruleset,
    impact: ChunkImpact,
) -> list[NewInterpretation]:
    fresh = []
    for revision in revisions:
        impact.processed += 1
        judged = _judge(revision, ruleset)
        if isinstance(judged, str):
            impact.failed += 1
            if len(impact.failures) < FAILURE_SAMPLES:
                impact.failures.append({"panel_id": str(revision.panel_id), "reason": judged})
            continue
        compare(revision.panel_id, newest[revision.panel_id], judged.body, impact)
        fresh.append(judged)
    return fresh


def _judge(revision: StoredRevision, ruleset: Ruleset) -> NewInterpretation | str:
    """One revision through the pure engine under the job's ruleset, or why it could not be."""
    try:
        accepted = accept_panel(revision.raw, ruleset, revision.created_at)
        body = interpret(accepted, ruleset).to_dict()
        body = with_sender_flags(body, revision.sender_flags)  # as the worker does
    except PanelRejected as exc:
        return (
            f"the results do not pass the acceptance rules of ruleset {ruleset.version} "
            f"({', '.join(sorted(exc.errors))}); its earlier interpretation stays the newest"
        )
    except Exception as exc:
        # the type and the place, never the message: it may quote the panel's values
        log.error("the engine failed on panel %s: %s", revision.panel_id, describe_exception(exc))
        return (
            "the interpretation engine failed on this panel (the error is in the worker's "
            "log); its earlier interpretation stays the newest"
        )
    return NewInterpretation(
        panel_id=revision.panel_id,
        revision_id=revision.revision_id,
        revision=revision.revision,
        ruleset=ruleset.version,
        body=body,
    )


def _record_progress(
    conn: Connection, job_id: uuid.UUID, impact: ChunkImpact, now: dt.datetime
) -> str:
    """Add the chunk's counts to the job (its row locked only from here to the commit), and
    finish the job with its last chunk. Raises :class:`_CancelledMeanwhile` when the job was
    cancelled meanwhile."""
    job = repo.lock_job(conn, job_id)
    if job is None or job.status != JobStatus.RUNNING:
        raise _CancelledMeanwhile
    done = repo.chunks_left(conn, job_id) == 0
    status = JobStatus.DONE if done else JobStatus.RUNNING
    repo.update_job(
        conn,
        job_id,
        processed=job.processed + impact.processed,
        changed=job.changed + impact.changed,
        failed=job.failed + impact.failed,
        summary=impact.merged_into(job.summary),
        status=status.value,
        finished_at=now if done else None,
    )
    return status.value


# --- lost messages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LostWork:
    jobs: list[uuid.UUID]  # queued jobs whose plan message is to be sent again
    chunks: list[tuple[uuid.UUID, int]]  # chunks whose message is to be sent again


def find_lost_work(
    engine: Engine, cutoff: dt.datetime, now: dt.datetime, limit: int = 2000
) -> LostWork:
    """Queued jobs and undone chunks last handed to the broker before ``cutoff`` (their
    message lost, or their worker killed), stamped ``now``; one transaction. The caller
    publishes them; a duplicate is harmless (plan and chunk are idempotent)."""
    with write_transaction(engine) as conn:
        jobs = repo.queued_jobs_before(conn, cutoff)
        repo.stamp_jobs_dispatched(conn, jobs, now)
        chunks = repo.lost_chunks(conn, cutoff, limit)
        repo.stamp_dispatched(conn, chunks, now)
    return LostWork(jobs, chunks)


# messages of different processes reach the queue slightly out of order
ORDER_SLACK = dt.timedelta(seconds=5)


def resume_lost_work(
    engine: Engine, dispatcher: Dispatcher, older_than_seconds: int, now: dt.datetime
) -> LostWork:
    """Publish again the plans and chunks whose message was lost or whose worker died (the
    sweeper's round). As for panels (labinterp.services.sweeper), a chunk still waiting
    behind others in the queue is not lost: only work handed over before the oldest message
    waiting in the re-processing queue, and more than ``older_than_seconds`` ago, is."""
    cutoff = now - dt.timedelta(seconds=older_than_seconds)
    try:
        oldest = dispatcher.oldest_waiting_reprocessing()
    except Exception as exc:  # the broker cannot say: fall back on the time alone
        log.warning("cannot look into the reprocessing queue (%s)", type(exc).__name__)
    else:
        if oldest is not None:
            cutoff = min(cutoff, dt.datetime.fromtimestamp(oldest, dt.UTC) - ORDER_SLACK)
    lost = find_lost_work(engine, cutoff, now)
    if lost.jobs or lost.chunks:
        dispatcher.publish_reprocessing(lost.jobs, lost.chunks, now.timestamp())
    return lost
