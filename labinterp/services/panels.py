"""Receiving panels: new accessions, safe retries, corrections (revisions)."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import simplejson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from labinterp.domain import AcceptedPanel, PanelRejected, Ruleset, accept_panel
from labinterp.models import Clinic, Panel, PanelContext, PanelRevision, Result
from labinterp.repositories import panels as repo
from labinterp.schemas.panels import to_raw_panel
from labinterp.services import audit, dispatch
from labinterp.services.audit import Actor
from labinterp.services.errors import AccessionConflict, InvalidInput, NotFound
from labinterp.services.reading import panel_document


@dataclass(frozen=True)
class Submitted:
    panel_id: uuid.UUID
    created: bool  # False: the same content was already here (a safe retry)
    # the panel as stored, when this call stored it (saves reading it back)
    document: dict[str, Any] | None = None


def content_hash(document: dict[str, Any]) -> str:
    """Hash of a parsed panel. What does not change the content does not change the hash: key
    order, ``1.10`` vs ``1.1``, unknown fields, the order of the results, empty or absent
    optional parts (``"context": {}`` and no context), one instant written with two offsets."""

    def canonical(value: Any) -> Any:
        if isinstance(value, Decimal):
            return format(value.normalize(), "f")
        if isinstance(value, dict):
            kept = {k: canonical(v) for k, v in value.items()}
            return {k: v for k, v in kept.items() if v not in (None, {}, [])}
        if isinstance(value, list | tuple):
            return [canonical(v) for v in value]
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.UTC).isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    doc = canonical(document)
    doc["results"] = sorted(
        doc.get("results", []), key=lambda r: simplejson.dumps(r, sort_keys=True)
    )
    text = simplejson.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _accept(document: dict[str, Any], ruleset: Ruleset, now: dt.datetime) -> AcceptedPanel:
    try:
        return accept_panel(to_raw_panel(document), ruleset, now)
    except PanelRejected as exc:
        raise InvalidInput(exc.errors) from exc


def submit_panel(
    session: Session,
    actor: Actor,
    clinic_id: uuid.UUID,
    document: dict[str, Any],
    ruleset: Ruleset,
    now: dt.datetime,
) -> Submitted:
    """Store a new accession and enqueue its interpretation.

    One transaction. Idempotency key: (clinic, accession) plus the content hash — the same
    content again is a no-op answering the existing panel; different content is a conflict.
    """
    accepted = _accept(document, ruleset, now)
    digest = content_hash(document)
    existing = repo.get_by_accession(session, clinic_id, document["accession"])
    if existing is not None:
        return _same_or_conflict(session, existing, document["accession"], digest)
    patient_doc = document["patient"]
    patient = repo.get_or_create_patient(
        session,
        clinic_id,
        patient_doc["id"],
        patient_doc.get("sex", "unknown"),
        patient_doc.get("birth_date"),
    )
    panel = Panel(
        id=uuid.uuid4(),
        clinic_id=clinic_id,
        patient_id=patient.id,
        accession=document["accession"],
        status="queued",
        current_revision=1,
        collected_at=accepted.collected_at,
        created_at=now,
        updated_at=now,
        enqueued_at=now,
    )
    panel.patient = patient
    panel.clinic = session.get_one(Clinic, clinic_id)  # loaded with the token: no query
    session.add(panel)
    revision = _add_revision(session, panel, 1, accepted, document, digest, actor, now)
    audit.record(
        session,
        actor,
        "panel.create",
        clinic_id=clinic_id,
        panel_id=panel.id,
        detail={"accession": panel.accession},
        at=now,
    )
    try:
        session.commit()
    except IntegrityError:  # the same accession raced in from another request
        session.rollback()
        raced = repo.get_by_accession(session, clinic_id, document["accession"])
        if raced is None:
            raise
        return _same_or_conflict(session, raced, document["accession"], digest)
    dispatch.enqueue_interpretations([panel.id])
    return Submitted(panel.id, created=True, document=panel_document(panel, revision, None))


def revise_panel(
    session: Session,
    actor: Actor,
    panel_id: uuid.UUID,
    document: dict[str, Any],
    ruleset: Ruleset,
    now: dt.datetime,
) -> Submitted:
    """Store corrected results as a new revision and enqueue it; earlier ones stay readable.

    One transaction. The same content as the current revision is a safe retry (no new
    revision); content equal to an older revision is a correction back to it, so it becomes
    the newest revision (a clinician must see the values the lab now stands by).
    """
    panel = repo.get_panel(session, panel_id, actor.clinic_ids)
    if panel is None:
        raise NotFound("panel")
    errors: dict[str, list[str]] = {}
    if document["accession"] != panel.accession:
        errors["accession"] = [
            f"accession {document['accession']!r} does not match this panel's {panel.accession!r}"
        ]
    if document["patient"]["id"] != panel.patient.external_id:
        errors["patient.id"] = [
            f"patient {document['patient']['id']!r} is not this panel's patient "
            f"{panel.patient.external_id!r}; post a new accession instead"
        ]
    try:
        accepted = _accept(document, ruleset, now)
    except InvalidInput as exc:
        errors = {**errors, **exc.errors}
    if errors:
        raise InvalidInput(errors)
    digest = content_hash(document)
    if repo.revision_hashes(session, panel.id).get(digest) == panel.current_revision:
        return Submitted(panel.id, created=False)
    revision = panel.current_revision + 1
    panel.current_revision = revision
    panel.status = "queued"
    panel.failure = None
    panel.collected_at = accepted.collected_at
    panel.updated_at = now
    panel.enqueued_at = now
    _add_revision(session, panel, revision, accepted, document, digest, actor, now)
    audit.record(
        session,
        actor,
        "panel.revise",
        clinic_id=panel.clinic_id,
        panel_id=panel.id,
        detail={"revision": revision},
        at=now,
    )
    try:
        session.commit()
    except IntegrityError:  # two corrections raced for the same revision number
        session.rollback()
        raise AccessionConflict(panel.accession, panel.id) from None
    dispatch.enqueue_interpretations([panel.id])
    return Submitted(panel.id, created=True)


def _same_or_conflict(session: Session, panel: Panel, accession: str, digest: str) -> Submitted:
    """The same content as the panel's current revision is a safe retry; anything else, even
    an earlier revision's content, conflicts (a 200 would claim values the panel no longer
    holds)."""
    if repo.revision_hashes(session, panel.id).get(digest) == panel.current_revision:
        return Submitted(panel.id, created=False)
    raise AccessionConflict(accession, panel.id)


def _add_revision(
    session: Session,
    panel: Panel,
    number: int,
    accepted: AcceptedPanel,
    document: dict[str, Any],
    digest: str,
    actor: Actor,
    now: dt.datetime,
) -> PanelRevision:
    revision = PanelRevision(
        id=uuid.uuid4(),
        panel_id=panel.id,
        revision=number,
        content_hash=digest,
        collected_at=accepted.collected_at,
        sex=accepted.sex,
        birth_date=accepted.birth_date,
        age_years=accepted.age_years,
        hemolyzed=accepted.hemolyzed,
        specimen_type=accepted.specimen_type,
        body=_jsonable(document),
        created_at=now,
        created_by=actor.name,
    )
    session.add(revision)
    # built through the relationships, so the new revision reads back without a query
    for result in accepted.results:
        lab = result.reference_range
        revision.results.append(
            Result(
                revision_id=revision.id,
                position=result.position,
                analyte=result.analyte,
                loinc=result.loinc,
                reported_value=str(result.reported_value),
                reported_unit=result.reported_unit,
                value=result.value,
                unit=result.unit,
                lab_low=None if lab is None or lab.low is None else str(lab.low),
                lab_high=None if lab is None or lab.high is None else str(lab.high),
                lab_range_text=None if lab is None else lab.text,
            )
        )
    ctx = accepted.context
    revision.context = PanelContext(
        revision_id=revision.id,
        twitching=None
        if ctx.twitching is None
        else {
            "sites": list(ctx.twitching.sites),
            "duration_days": ctx.twitching.duration_days,
            "frequency": ctx.twitching.frequency,
        },
        symptoms=list(ctx.symptoms),
        factors=list(ctx.factors),
        medications=list(ctx.medications),
        notes=ctx.notes,
    )
    return revision


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value
