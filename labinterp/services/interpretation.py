"""Interpreting a stored panel: what the worker runs."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from labinterp.domain import (
    Context,
    PanelRejected,
    RawPanel,
    RawRange,
    RawResult,
    Ruleset,
    Twitching,
    accept_panel,
    interpret,
)
from labinterp.models import Interpretation, InterpretationCode, Panel, PanelRevision
from labinterp.repositories import panels as repo
from labinterp.services import audit
from labinterp.services.audit import SYSTEM

log = logging.getLogger(__name__)

Outcome = Literal["interpreted", "already_done", "missing", "failed"]


@dataclass(frozen=True)
class InterpretOutcome:
    outcome: Outcome
    interpretation_id: uuid.UUID | None = None


def _as_sent(revision: PanelRevision) -> dt.datetime:
    """The collection time with the clinic's own UTC offset (the stored column is the same
    instant in UTC): age bands turn over on the local calendar date of collection."""
    sent = (revision.body or {}).get("collected_at")
    if isinstance(sent, str):
        try:
            moment = dt.datetime.fromisoformat(sent.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    return _aware(revision.collected_at)


def raw_panel_from_revision(revision: PanelRevision) -> RawPanel:
    """Rebuild the panel as the clinic sent it, from what was stored verbatim."""
    ctx = revision.context
    return RawPanel(
        collected_at=_as_sent(revision),
        sex=revision.sex,  # type: ignore[arg-type]
        birth_date=revision.birth_date,
        age_years=revision.age_years,
        hemolyzed=revision.hemolyzed,
        specimen_type=revision.specimen_type,
        results=tuple(
            RawResult(
                analyte=r.analyte,
                loinc=r.loinc,
                value=Decimal(r.reported_value),
                unit=r.reported_unit,
                reference_range=None
                if r.lab_low is None and r.lab_high is None and r.lab_range_text is None
                else RawRange(
                    low=None if r.lab_low is None else Decimal(r.lab_low),
                    high=None if r.lab_high is None else Decimal(r.lab_high),
                    text=r.lab_range_text,
                ),
            )
            for r in sorted(revision.results, key=lambda r: r.position)
        ),
        context=Context()
        if ctx is None
        else Context(
            twitching=None
            if ctx.twitching is None
            else Twitching(
                sites=tuple(ctx.twitching.get("sites") or ()),
                duration_days=ctx.twitching.get("duration_days"),
                frequency=ctx.twitching.get("frequency"),
            ),
            symptoms=tuple(ctx.symptoms or ()),
            factors=tuple(ctx.factors or ()),
            medications=tuple(ctx.medications or ()),
            notes=ctx.notes,
        ),
    )


def interpret_panel(
    session: Session, panel_id: uuid.UUID, ruleset: Ruleset, revision_number: int | None = None
) -> InterpretOutcome:
    """Interpret the panel's current revision (or ``revision_number``) with ``ruleset`` and
    store the result.

    One transaction. Idempotency key: (revision, ruleset version), enforced by a unique
    constraint, so a redelivered or duplicated task is a no-op. The panel's status changes
    only while the interpreted revision is still its current one: a correction committed
    meanwhile stays `queued` for its own task (or the sweeper), never shown as interpreted
    with the previous revision's findings.
    """
    panel = session.get(Panel, panel_id)
    if panel is None:
        return InterpretOutcome("missing")
    number = revision_number or panel.current_revision
    revision = repo.get_revision(session, panel.id, number)
    if revision is None:
        return InterpretOutcome("missing")
    now = dt.datetime.now(dt.UTC)
    if repo.interpretation_exists(session, revision.id, ruleset.version):
        _settle(session, panel.id, number, now, "interpreted")
        session.commit()
        return InterpretOutcome("already_done")
    try:
        accepted = accept_panel(
            raw_panel_from_revision(revision), ruleset, _aware(revision.created_at)
        )
    except PanelRejected as exc:  # valid when received, not under this ruleset
        detail = {"errors": exc.errors, "ruleset": ruleset.version, "revision": number}
        _fail(session, panel, number, str(exc), detail, now)
        return InterpretOutcome("failed")
    body = interpret(accepted, ruleset).to_dict()
    try:
        row = store_interpretation(session, panel, revision, ruleset, body, now)
        for code, kind in _codes(body):
            session.add(InterpretationCode(interpretation_id=row.id, code=code, kind=kind))
        _settle(session, panel.id, number, now, "interpreted")
        session.commit()
    except IntegrityError:  # another worker stored the same interpretation first
        session.rollback()
        return InterpretOutcome("already_done")
    return InterpretOutcome("interpreted", row.id)


def _settle(
    session: Session,
    panel_id: uuid.UUID,
    revision_number: int,
    now: dt.datetime,
    status: str,
    failure: str | None = None,
) -> None:
    """Set the panel's processing status if ``revision_number`` is still current (checked by
    the database at the moment of the update, not on a copy read earlier)."""
    session.execute(
        update(Panel)
        .where(Panel.id == panel_id, Panel.current_revision == revision_number)
        .values(status=status, failure=failure, updated_at=now)
        .execution_options(synchronize_session="fetch")
    )


def store_interpretation(
    session: Session,
    panel: Panel,
    revision: PanelRevision,
    ruleset: Ruleset,
    body: dict[str, object],
    now: dt.datetime,
) -> Interpretation:
    row = Interpretation(
        id=uuid.uuid4(),
        panel_id=panel.id,
        revision_id=revision.id,
        revision=revision.revision,
        ruleset=ruleset.version,
        created_at=now,
        status=str(body["status"]),
        priority=str(body["priority"]),
        body=body,
    )
    session.add(row)
    session.flush()
    return row


def _codes(body: dict[str, object]) -> set[tuple[str, str]]:
    """Codes a panel can be filtered by: finding codes, red-flag codes, result flags (L, HH…)."""
    codes: set[tuple[str, str]] = set()
    for finding in body.get("findings", []):  # type: ignore[attr-defined]
        codes.add((finding["code"], "finding"))
    for flag in body.get("red_flags", []):  # type: ignore[attr-defined]
        codes.add((flag["code"], "red_flag"))
    for result in body.get("results", []):  # type: ignore[attr-defined]
        if result.get("interpretation") not in (None, "N"):
            codes.add((result["interpretation"], "result"))
    return codes


def mark_failed(session: Session, panel_id: uuid.UUID, reason: str) -> None:
    """Record that interpretation gave up after its retries. One transaction."""
    panel = session.get(Panel, panel_id)
    if panel is None or panel.status != "queued":
        return
    detail = {"reason": reason[:2000], "revision": panel.current_revision}
    _fail(session, panel, panel.current_revision, reason[:2000], detail, dt.datetime.now(dt.UTC))


def _fail(
    session: Session,
    panel: Panel,
    revision_number: int,
    failure: str,
    detail: dict[str, object],
    now: dt.datetime,
) -> None:
    """The panel is `failed` with its reason (if that revision is still current), audited.
    Commits."""
    _settle(session, panel.id, revision_number, now, "failed", failure)
    audit.record(
        session,
        SYSTEM,
        "interpretation.failed",
        clinic_id=panel.clinic_id,
        panel_id=panel.id,
        detail=detail,
    )
    session.commit()


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
