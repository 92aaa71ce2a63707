"""Interpreting stored panels: what the worker runs, one call per message.

A message carries a batch of panel ids. :func:`interpret_panels` takes up the ones still
`queued`, reads their revisions set-based, judges each with the ruleset that accepted it
(stored with the revision), and writes the whole batch's interpretations and statuses, in one
transaction. Idempotency key: (revision, ruleset), enforced by a unique
constraint, so a redelivered or duplicated message is a no-op.

Failures are the service's to handle: a panel that cannot be interpreted ends `failed` with a
code and a message a clinician can read (no exception text, no SQL, no patient data); the
exception goes to the worker's log as its type and stack, without its message. A panel taken
up again ``max_attempts`` times without finishing (its worker killed each time) ends `failed`
too. After a vanished attempt, the batch's panels are retried one transaction each, so one bad
panel never takes its batch-mates down with it again.

A critical interpretation of a clinic with a webhook gets its alert in the same transaction
(labinterp.services.alerts); the caller publishes the alerts' tasks once it has returned.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import Connection, Engine

from labinterp import metrics
from labinterp.broker import SOFT_TIME_LIMIT
from labinterp.config import DEFAULT_ALERT_GIVE_UP_SECONDS
from labinterp.db import write_transaction
from labinterp.domain import PanelRejected, Priority, Ruleset, accept_panel, interpret
from labinterp.domain.disagreements import with_sender_flags
from labinterp.models import FailureCode, PanelStatus
from labinterp.redaction import describe_exception
from labinterp.repositories import alerts as alerts_repo
from labinterp.repositories import interpretations as repo
from labinterp.repositories.interpretations import Claim, NewInterpretation, StoredRevision
from labinterp.services import audit
from labinterp.services.audit import SYSTEM

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]

DEFAULT_ALERT_GIVE_UP = dt.timedelta(seconds=DEFAULT_ALERT_GIVE_UP_SECONDS)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Failure:
    code: FailureCode
    message: str


@dataclass
class BatchOutcome:
    interpreted: list[uuid.UUID] = field(default_factory=list)
    already_done: list[uuid.UUID] = field(default_factory=list)  # interpreted before
    failed: list[tuple[uuid.UUID, FailureCode]] = field(default_factory=list)
    skipped: list[uuid.UUID] = field(default_factory=list)  # not queued (done or unknown)
    alerts: list[uuid.UUID] = field(default_factory=list)  # made, to publish after the commit

    def merge(self, other: BatchOutcome) -> None:
        self.interpreted += other.interpreted
        self.already_done += other.already_done
        self.failed += other.failed
        self.alerts += other.alerts

    def summary(self) -> str:
        return (
            f"{len(self.interpreted)} interpreted, {len(self.already_done)} already done, "
            f"{len(self.failed)} failed, {len(self.skipped)} not queued"
        )


def interpret_panels(
    engine: Engine,
    rulesets: Mapping[str, Ruleset],
    panel_ids: Sequence[uuid.UUID],
    *,
    max_attempts: int,
    retried: bool = False,
    clock: Clock = _utcnow,
    alert_give_up: dt.timedelta = DEFAULT_ALERT_GIVE_UP,
) -> BatchOutcome:
    """Interpret the current revision of each panel that is still `queued`.

    A first delivery is one transaction: the panels are taken up (their rows locked: a
    duplicate message waits, then finds them done), judged and stored together. A message
    delivered again (``retried``: its worker died, or the database was away) first counts an
    attempt on each of its panels, committed before any work, and then works them one
    transaction each: a panel that kills its worker every time ends `failed` after
    ``max_attempts`` takes, alone, and never takes its batch-mates down with it. (The sweeper
    counts an attempt too, when it publishes again a panel whose message vanished.)

    The alerts made (``outcome.alerts``, given up ``alert_give_up`` after they are made) are
    committed when this returns: the caller publishes them.
    """
    outcome = BatchOutcome()
    if not retried:
        with write_transaction(engine) as conn:
            claims = repo.claim_queued(conn, panel_ids, count=False)
            outcome.skipped = _not_claimed(panel_ids, claims)
            exhausted = [c for c in claims if c.attempts >= max_attempts]
            if exhausted:
                outcome.merge(_fail_exhausted(conn, exhausted, clock()))
            work = [c for c in claims if c.attempts < max_attempts]
            if work:
                outcome.merge(_interpret_batch(conn, rulesets, work, clock, alert_give_up))
        return outcome
    with write_transaction(engine) as conn:
        claims = repo.claim_queued(conn, panel_ids, count=True)
    outcome.skipped = _not_claimed(panel_ids, claims)
    for claim in claims:
        with write_transaction(engine) as conn:
            if claim.attempts >= max_attempts:
                outcome.merge(_fail_exhausted(conn, [claim], clock()))
            else:
                outcome.merge(_interpret_batch(conn, rulesets, [claim], clock, alert_give_up))
    return outcome


def _not_claimed(panel_ids: Sequence[uuid.UUID], claims: Sequence[Claim]) -> list[uuid.UUID]:
    claimed = {c.panel_id for c in claims}
    return [i for i in panel_ids if i not in claimed]


def _interpret_batch(
    conn: Connection,
    rulesets: Mapping[str, Ruleset],
    claims: Sequence[Claim],
    clock: Clock,
    alert_give_up: dt.timedelta,
) -> BatchOutcome:
    """Judge the current revisions of the claimed panels and store the results, in the
    caller's transaction."""
    stored = repo.current_revisions(conn, [c.panel_id for c in claims])
    return _judge_and_store(conn, rulesets, claims, stored, clock, alert_give_up)


def _judge_and_store(
    conn: Connection,
    rulesets: Mapping[str, Ruleset],
    claims: Sequence[Claim],
    stored: Sequence[StoredRevision],
    clock: Clock,
    alert_give_up: dt.timedelta = DEFAULT_ALERT_GIVE_UP,
) -> BatchOutcome:
    """The engine's judgement of each revision read, stored; each panel's status set only if
    the revision judged is still its current one (a correction committed since the read
    stays `queued` for its own message), and an alert made for each critical one."""
    outcome = BatchOutcome()
    by_panel = {c.panel_id: c for c in claims}
    fresh: list[NewInterpretation] = []
    failures: list[tuple[StoredRevision, Failure]] = []
    done_before: list[StoredRevision] = []
    for revision in stored:
        if revision.interpreted:
            done_before.append(revision)
            continue
        judged = _judge(revision, rulesets)
        if isinstance(judged, Failure):
            failures.append((revision, judged))
        else:
            fresh.append(judged)
    now = clock()
    stored_now = repo.store_interpretations_with_ids(conn, fresh, now)
    repo.show_newest(conn, stored_now, settled_at=now)  # shown and settled in one update
    critical = [(s.id, s.new.panel_id) for s in stored_now if s.priority is Priority.CRITICAL]
    outcome.alerts = alerts_repo.create_alerts(conn, critical, now, now + alert_give_up)
    written = [s.new for s in stored_now]
    mine = {r.revision_id for r in written}
    raced = [r for r in fresh if r.revision_id not in mine]  # another worker stored it first
    settled = [(r.panel_id, r.revision) for r in raced]  # stored_now ones: settled above
    settled += [(r.panel_id, r.revision) for r in done_before]
    repo.settle(conn, settled, PanelStatus.INTERPRETED, now)
    for revision, failure in failures:
        _record_failure(conn, by_panel[revision.panel_id], revision.revision, failure, now)
    outcome.interpreted = [r.panel_id for r in written]
    outcome.already_done = [r.panel_id for r in done_before] + [r.panel_id for r in raced]
    outcome.failed = [(r.panel_id, f.code) for r, f in failures]
    metrics.record_interpretations(
        [r.body for r in written],
        [(now - by_panel[r.panel_id].accepted_at).total_seconds() for r in written],
    )
    metrics.record_failures([f.code for _, f in failures])
    return outcome


def _judge(
    revision: StoredRevision, rulesets: Mapping[str, Ruleset]
) -> NewInterpretation | Failure:
    """One revision through the pure engine, under the ruleset that accepted it."""
    ruleset = rulesets.get(revision.ruleset)
    if ruleset is None:
        return Failure(
            FailureCode.RULESET_UNAVAILABLE,
            f"Ruleset {revision.ruleset}, which accepted this panel, is not installed where it "
            "was taken up; an operator can retry it once every worker has that ruleset.",
        )
    try:
        accepted = accept_panel(revision.raw, ruleset, revision.created_at)
        body = interpret(accepted, ruleset).to_dict()
        body = with_sender_flags(body, revision.sender_flags)  # the sender's flags beside ours
    except PanelRejected as exc:  # valid when received: a ruleset file changed since?
        return Failure(
            FailureCode.REJECTED_BY_RULESET,
            f"The results do not pass the acceptance rules of ruleset {ruleset.version} "
            f"({', '.join(sorted(exc.errors))}); post corrected results, or ask an operator.",
        )
    except SoftTimeLimitExceeded:
        log.error("interpreting panel %s took longer than %s s", revision.panel_id, SOFT_TIME_LIMIT)
        return Failure(
            FailureCode.TIMED_OUT,
            f"Interpreting this panel took longer than {SOFT_TIME_LIMIT} s and was stopped; "
            "an operator can retry it.",
        )
    except Exception as exc:
        # the type and the place, never the message: it may quote the panel's values
        log.error("the engine failed on panel %s: %s", revision.panel_id, describe_exception(exc))
        return Failure(
            FailureCode.ENGINE_ERROR,
            "The interpretation engine failed on this panel; the error is in the worker's log, "
            "and an operator can retry the panel once it is fixed.",
        )
    return NewInterpretation(
        panel_id=revision.panel_id,
        revision_id=revision.revision_id,
        revision=revision.revision,
        ruleset=ruleset.version,
        body=body,
    )


def _fail_exhausted(conn: Connection, claims: Sequence[Claim], now: dt.datetime) -> BatchOutcome:
    outcome = BatchOutcome()
    for claim in claims:
        failure = Failure(
            FailureCode.TOO_MANY_ATTEMPTS,
            f"Interpretation was taken up {claim.attempts + 1} times and never finished (the "
            "worker stopped, or the database could not be reached, each time); an operator "
            "can retry it.",
        )
        _record_failure(conn, claim, claim.revision, failure, now)
        outcome.failed.append((claim.panel_id, failure.code))
    metrics.record_failures([FailureCode.TOO_MANY_ATTEMPTS] * len(claims))
    return outcome


def _record_failure(
    conn: Connection, claim: Claim, revision: int, failure: Failure, now: dt.datetime
) -> None:
    """The panel is `failed` with its reason (if that revision is still current), audited."""
    settled = repo.settle(
        conn,
        [(claim.panel_id, revision)],
        PanelStatus.FAILED,
        now,
        failure.code,
        failure.message,
    )
    if settled:
        audit.record(
            conn,
            SYSTEM,
            "interpretation.failed",
            clinic_id=claim.clinic_id,
            panel_id=claim.panel_id,
            detail={"code": str(failure.code), "revision": revision},
            at=now,
        )
    log.warning("panel %s failed: %s", claim.panel_id, failure.code)
