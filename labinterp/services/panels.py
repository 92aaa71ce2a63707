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


def _canonical(value: Any) -> Any:
    """A panel document reduced to what its content is (see :func:`content_hash`). Works on
    a freshly parsed document and on one read back from storage (times as ISO text)."""
    if isinstance(value, Decimal | float | int) and not isinstance(value, bool):
        return format(Decimal(str(value)).normalize(), "f")
    if isinstance(value, dict):
        kept = {k: _canonical(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _canonical_document(document: dict[str, Any]) -> dict[str, Any]:
    doc = dict(_canonical(document))
    doc["results"] = sorted(
        doc.get("results", []), key=lambda r: simplejson.dumps(r, sort_keys=True)
    )
    return doc


def content_hash(document: dict[str, Any]) -> str:
    """Hash of a parsed panel. What does not change the content does not change the hash: key
    order, ``1.10`` vs ``1.1``, unknown fields, the order of the results, empty or absent
    optional parts (``"context": {}`` and no context), one instant written with two offsets."""
    text = simplejson.dumps(_canonical_document(document), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def differences(stored: dict[str, Any], sent: dict[str, Any]) -> list[str]:
    """Where ``sent`` differs from the ``stored`` revision's document, for a 409 a person can
    act on: 'collected_at', 'results[magnesium].value', 'context.notes'."""
    if isinstance(stored.get("collected_at"), str):
        stored = {**stored, "collected_at": dt.datetime.fromisoformat(stored["collected_at"])}
    old, new = _canonical_document(stored), _canonical_document(sent)
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key == "results":
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            out.append(key)

    def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {str(r.get("analyte") or r.get("loinc")): r for r in doc.get("results", [])}

    a_results, b_results = by_name(old), by_name(new)
    for name in sorted(set(a_results) | set(b_results)):
        a, b = a_results.get(name), b_results.get(name)
        if a is None or b is None:
            out.append(f"results[{name}]")
        else:
            out += [f"results[{name}].{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return out


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
        return _same_or_conflict(session, existing, document, digest)
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
    revision = _add_revision(
        session, panel, 1, accepted, document, digest, actor, now, ruleset.version
    )
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
        return _same_or_conflict(session, raced, document, digest)
    dispatch.publish_soon([panel.id])
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
    _add_revision(session, panel, revision, accepted, document, digest, actor, now, ruleset.version)
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
    dispatch.publish_soon([panel.id])
    return Submitted(panel.id, created=True)


def _same_or_conflict(
    session: Session, panel: Panel, document: dict[str, Any], digest: str
) -> Submitted:
    """The same content as the panel's current revision is a safe retry; anything else, even
    an earlier revision's content, conflicts (a 200 would claim values the panel no longer
    holds)."""
    if repo.revision_hashes(session, panel.id).get(digest) == panel.current_revision:
        return Submitted(panel.id, created=False)
    current = repo.get_revision(session, panel.id, panel.current_revision)
    raise AccessionConflict(
        document["accession"],
        panel.id,
        differences(current.body, document) if current is not None and current.body else None,
    )


def _add_revision(
    session: Session,
    panel: Panel,
    number: int,
    accepted: AcceptedPanel,
    document: dict[str, Any],
    digest: str,
    actor: Actor,
    now: dt.datetime,
    ruleset_version: str,
) -> PanelRevision:
    offset = accepted.collected_at.utcoffset()
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
        ruleset=ruleset_version,
        collected_utc_offset=0 if offset is None else int(offset.total_seconds() // 60),
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
