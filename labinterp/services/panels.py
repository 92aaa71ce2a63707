"""Receiving panels: new accessions, safe retries, corrections (revisions)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from labinterp import metrics
from labinterp.domain import AcceptedPanel, PanelRejected, Ruleset, accept_panel
from labinterp.ids import new_id
from labinterp.models import Panel, PanelContext, PanelRevision, PanelStatus, Result
from labinterp.repositories import new_panels
from labinterp.repositories import panels as repo
from labinterp.schemas.panels import to_raw_panel
from labinterp.services import audit
from labinterp.services.audit import Actor
from labinterp.services.errors import AccessionConflict, InvalidInput, NotFound
from labinterp.services.reading import PanelHead, PanelView, panel_document


@dataclass(frozen=True)
class Submitted:
    panel_id: uuid.UUID
    created: bool  # False: the same content was already here (a safe retry)
    # the panel as stored, when this call stored it (saves reading it back)
    document: PanelView | None = None


def _canonical(value: Any) -> Any:
    """A panel document reduced to what its content is (see :func:`content_hash`): numbers as
    normalised decimal text, times in UTC, empty parts dropped; only strings, booleans, lists
    and objects remain. Works on a freshly parsed document and on one read back from storage
    (times as ISO text)."""
    kind = type(value)  # the exact types a parsed document holds first (the hottest path)
    if kind is str or kind is bool or value is None:
        return value
    if kind is dict:
        kept = {}
        for key, item in value.items():
            item = _canonical(item)
            if item is not None and item != {} and item != []:
                kept[key] = item
        return kept
    if kind is Decimal:  # as Decimal(str(value)): the same number, the same context
        return format(value.normalize(), "f")
    if kind is list:
        return [_canonical(v) for v in value]
    return _canonical_other(value)


def _canonical_other(value: Any) -> Any:
    if isinstance(value, str | bool):
        return value
    if isinstance(value, dict):
        return _canonical(dict(value))
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, Decimal | float | int):
        return format(Decimal(str(value)).normalize(), "f")
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


# only strings, booleans, lists and objects: the standard library's C encoder suffices; one
# encoder for every call (json.dumps with options builds a new one each time)
_CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_canonical_text = _CANONICAL_ENCODER.encode


def _canonical_document(document: dict[str, Any]) -> dict[str, Any]:
    doc = dict(_canonical(document))
    doc["results"] = sorted(doc.get("results", []), key=_canonical_text)
    return doc


# where the results go in a canonical text written with none: ``"results":[]`` can stand
# nowhere else in it (an empty list is no part of a canonical document, and a string's quotes
# are escaped)
_NO_RESULTS = '"results":[]'


def content_hash(document: dict[str, Any]) -> str:
    """Hash of a parsed panel. What does not change the content does not change the hash: key
    order, ``1.10`` vs ``1.1``, unknown fields, the order of the results, empty or absent
    optional parts (``"context": {}`` and no context), one instant written with two offsets.

    The text hashed is ``_canonical_text(_canonical_document(document))``, written with each
    result encoded once (the results are ordered by their own text)."""
    doc = _canonical(document)
    results = sorted(map(_canonical_text, doc.get("results", [])))
    doc["results"] = []
    text = _canonical_text(doc).replace(_NO_RESULTS, f'"results":[{",".join(results)}]', 1)
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
    engine: Engine,
    actor: Actor,
    clinic: ClinicRef,
    document: dict[str, Any],
    ruleset: Ruleset,
    now: dt.datetime,
    *,
    source: Source | None = None,
) -> Submitted:
    """Store a new accession, `queued` for its interpretation (a worker's relay publishes it:
    labinterp.services.relay).

    One durable write (one statement on PostgreSQL). Idempotency key: (clinic, accession)
    plus the content hash — the same content again is a no-op answering the existing panel;
    different content is a conflict. A connection found dead is replaced and the write tried
    once more (it cannot have written anything, or the retry meets the accession and answers
    as for a repeat). ``source``: what a FHIR or HL7 v2 document was received as
    (labinterp.interop.intake), stored beside the revision.
    """
    accepted = _accept(document, ruleset, now)
    digest = content_hash(document)
    panel = _new_panel(actor, clinic, document, accepted, digest, ruleset, now, source)
    for last_try in (False, True):
        try:
            new_panels.store_new_panel_grouped(engine, panel)
            break
        except IntegrityError:  # the accession is stored already: a retry, or a conflict
            with Session(engine) as session:
                existing = repo.get_by_accession(session, clinic.id, document["accession"])
                if existing is None:
                    raise
                return _same_or_conflict(session, existing, document, digest)
        except DBAPIError as exc:
            if last_try or not exc.connection_invalidated:
                raise
    metrics.PANELS_ACCEPTED.labels("new").inc()
    head = PanelHead(
        id=panel.id,
        accession=panel.accession,
        clinic=clinic.name,
        patient_id=panel.patient_id,
        status=PanelStatus.QUEUED,
        review_status=None,
        failure_code=None,
        failure=None,
        created_at=now,
        updated_at=now,
    )
    return Submitted(
        panel.id,
        created=True,
        document=panel_document(head, panel.revision, None, {ruleset.version: ruleset}),
    )


def submit_panels(
    engine: Engine,
    actor: Actor,
    clinic: ClinicRef,
    documents: Sequence[dict[str, Any]],
    ruleset: Ruleset,
    now: dt.datetime,
    *,
    sources: Sequence[Source | None] | None = None,
) -> list[Submitted | InvalidInput | AccessionConflict]:
    """:func:`submit_panel` for each of ``documents`` (bulk import), with the same outcome
    for each, in order; a refused one is returned, not raised, and never stops the others.

    The accessions the clinic does not have yet are stored in one transaction; those it has
    with the same content (by hash) are repeats, read in one query; the others, and those that
    come twice, go one by one through :func:`submit_panel` (a conflict, or an old revision's
    hash).
    Should another writer store one of them meanwhile, the transaction writes nothing and
    every panel of the batch goes one by one. Idempotency key as for :func:`submit_panel`.
    ``sources``: what each document was received as (FHIR NDJSON), in order.
    """
    outcomes: list[Submitted | InvalidInput | AccessionConflict | None] = [None] * len(documents)
    fresh: list[tuple[int, new_panels.NewPanel]] = []
    for index, document in enumerate(documents):
        try:
            accepted = _accept(document, ruleset, now)
        except InvalidInput as exc:
            outcomes[index] = exc
            continue
        digest = content_hash(document)
        source = sources[index] if sources is not None else None
        fresh.append(
            (index, _new_panel(actor, clinic, document, accepted, digest, ruleset, now, source))
        )
    with Session(engine) as session:
        stored = repo.current_hashes(session, clinic.id, {p.accession for _, p in fresh})
    batch: list[tuple[int, new_panels.NewPanel]] = []
    one_by_one: list[int] = []
    seen: set[str] = set()
    for index, panel in fresh:
        if panel.accession in stored:
            panel_id, digest = stored[panel.accession]
            if digest == panel.revision.content_hash:  # the same content: a repeat
                metrics.PANELS_ACCEPTED.labels("repeat").inc()
                outcomes[index] = Submitted(panel_id, created=False)
            else:  # a conflict, or a revision hashed by an earlier release
                one_by_one.append(index)
        elif panel.accession in seen:  # twice in this batch: the second one after the first
            one_by_one.append(index)
        else:
            seen.add(panel.accession)
            batch.append((index, panel))
    try:
        if batch:
            new_panels.store_new_panels(engine, [panel for _, panel in batch])
    except IntegrityError:  # stored meanwhile by another writer: each panel on its own
        one_by_one += [index for index, _ in batch]
    else:
        metrics.PANELS_ACCEPTED.labels("new").inc(len(batch))
        for index, panel in batch:
            outcomes[index] = Submitted(panel.id, created=True)
    for index in sorted(one_by_one):
        try:
            outcomes[index] = submit_panel(
                engine,
                actor,
                clinic,
                documents[index],
                ruleset,
                now,
                source=sources[index] if sources is not None else None,
            )
        except (InvalidInput, AccessionConflict) as exc:
            outcomes[index] = exc
    return [outcome for outcome in outcomes if outcome is not None]


@dataclass(frozen=True)
class ClinicRef:
    id: uuid.UUID
    name: str

    @classmethod
    def of_clinic_token(cls, actor: Actor) -> ClinicRef | None:
        """The one clinic a clinic's token acts for (None for an actor of several or none)."""
        clinic_id = actor.single_clinic
        return None if clinic_id is None else cls(clinic_id, actor.clinic_names[clinic_id])


@dataclass(frozen=True)
class Source:
    """What a revision was received as, kept beside it: the format (models.SourceFormat), the
    document exactly as received, and what it held that was kept but not judged."""

    format: str
    document: str | None = None
    not_interpreted: list[dict[str, str]] | None = None


def _new_panel(
    actor: Actor,
    clinic: ClinicRef,
    document: dict[str, Any],
    accepted: AcceptedPanel,
    digest: str,
    ruleset: Ruleset,
    now: dt.datetime,
    source: Source | None = None,
) -> new_panels.NewPanel:
    patient = document["patient"]
    return new_panels.NewPanel(
        id=new_id(),
        clinic_id=clinic.id,
        accession=document["accession"],
        patient_id=patient["id"],
        patient_sex=patient.get("sex", "unknown"),
        patient_birth_date=patient.get("birth_date"),
        collected_at=accepted.collected_at,
        created_at=now,
        revision=_new_revision(1, accepted, document, digest, actor, ruleset, now, source),
        actor=actor.name,
        role=actor.role,
        address=actor.address,
        token_id=actor.token_id,
    )


def _new_revision(
    number: int,
    accepted: AcceptedPanel,
    document: dict[str, Any],
    digest: str,
    actor: Actor,
    ruleset: Ruleset,
    now: dt.datetime,
    source: Source | None = None,
) -> new_panels.NewRevision:
    offset = accepted.collected_at.utcoffset()
    ctx = accepted.context
    sent = document["results"]
    return new_panels.NewRevision(
        id=new_id(),
        revision=number,
        ruleset=ruleset.version,
        content_hash=digest,
        collected_at=accepted.collected_at,
        collected_utc_offset=0 if offset is None else int(offset.total_seconds() // 60),
        sex=accepted.sex,
        birth_date=accepted.birth_date,
        age_years=accepted.age_years,
        hemolyzed=accepted.hemolyzed,
        specimen_type=accepted.specimen_type,
        body=_as_received(document),
        created_at=now,
        created_by=actor.name,
        results=tuple(
            new_panels.NewResult(
                position=r.position,
                analyte=r.analyte,
                loinc=r.loinc,
                reported_value=str(r.reported_value),
                reported_unit=r.reported_unit,
                value=r.value,
                unit=r.unit,
                lab_low=_text(r.reference_range.low if r.reference_range else None),
                lab_high=_text(r.reference_range.high if r.reference_range else None),
                lab_range_text=r.reference_range.text if r.reference_range else None,
                sender_flag=sent[r.position].get("sender_flag"),
            )
            for r in accepted.results
        ),
        context=new_panels.NewContext(
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
        ),
        source_format=None if source is None else source.format,
        source_document=None if source is None else source.document,
        not_interpreted=None if source is None else source.not_interpreted,
    )


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def revise_panel(
    session: Session,
    actor: Actor,
    panel_id: uuid.UUID,
    document: dict[str, Any],
    ruleset: Ruleset,
    now: dt.datetime,
    *,
    source: Source | None = None,
) -> Submitted:
    """Store corrected results as a new revision, `queued` for its interpretation (a worker's
    relay publishes it); earlier ones stay readable.

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
    if _current_differences(session, panel, document, digest) == []:
        return Submitted(panel.id, created=False)
    number = panel.current_revision + 1
    panel.current_revision = number
    panel.status = PanelStatus.QUEUED
    panel.failure = panel.failure_code = None
    panel.attempts = 0
    panel.collected_at = accepted.collected_at
    panel.updated_at = now
    panel.enqueued_at = None  # for a worker's relay to publish
    _add_revision(
        session,
        panel,
        _new_revision(number, accepted, document, digest, actor, ruleset, now, source),
    )
    audit.record(
        session,
        actor,
        "panel.revise",
        clinic_id=panel.clinic_id,
        panel_id=panel.id,
        detail={"revision": number},
        at=now,
    )
    try:
        session.commit()
    except IntegrityError:  # two corrections raced for the same revision number
        session.rollback()
        raise AccessionConflict(panel.accession, panel.id) from None
    metrics.PANELS_ACCEPTED.labels("revision").inc()
    return Submitted(panel.id, created=True)


def _current_differences(
    session: Session, panel: Panel, document: dict[str, Any], digest: str
) -> list[str] | None:
    """Where ``document`` differs from the panel's current revision: [] when it says the same
    (by hash, else, for a revision hashed by an earlier release, field by field); None when it
    differs and the stored revision cannot say where. The current revision is read at most
    once."""
    if repo.revision_hashes(session, panel.id).get(digest) == panel.current_revision:
        return []
    current = repo.get_revision(session, panel.id, panel.current_revision)
    if current is None or not current.body:
        return None
    return differences(current.body, document)


def _same_or_conflict(
    session: Session, panel: Panel, document: dict[str, Any], digest: str
) -> Submitted:
    """The same content as the panel's current revision is a safe retry; anything else, even
    an earlier revision's content, conflicts (a 200 would claim values the panel no longer
    holds)."""
    differing = _current_differences(session, panel, document, digest)
    if differing == []:
        metrics.PANELS_ACCEPTED.labels("repeat").inc()
        return Submitted(panel.id, created=False)
    raise AccessionConflict(document["accession"], panel.id, differing)


def _add_revision(session: Session, panel: Panel, new: new_panels.NewRevision) -> PanelRevision:
    """The ORM rows of a new revision, built through the relationships (so it reads back
    without a query)."""
    revision = PanelRevision(
        id=new.id,
        panel_id=panel.id,
        revision=new.revision,
        content_hash=new.content_hash,
        collected_at=new.collected_at,
        sex=new.sex,
        birth_date=new.birth_date,
        age_years=new.age_years,
        hemolyzed=new.hemolyzed,
        specimen_type=new.specimen_type,
        ruleset=new.ruleset,
        collected_utc_offset=new.collected_utc_offset,
        body=new.body,
        created_at=new.created_at,
        created_by=new.created_by,
        source_format=new.source_format,
        source_document=new.source_document,
        not_interpreted=new.not_interpreted,
    )
    session.add(revision)
    for r in new.results:
        revision.results.append(Result(revision_id=new.id, **r._asdict()))
    ctx = new.context
    revision.context = PanelContext(
        revision_id=new.id,
        twitching=ctx.twitching,
        symptoms=ctx.symptoms,
        factors=ctx.factors,
        medications=ctx.medications,
        notes=ctx.notes,
    )
    return revision


def _as_received(document: dict[str, Any]) -> dict[str, Any]:
    """The parsed request as it is stored (JSON): its two dates as ISO text, the collection
    time with the offset it was sent with. Everything else a loaded ``PanelIn`` holds is JSON
    already (numbers are exact decimals)."""
    patient = document["patient"]
    birth_date = patient.get("birth_date")
    return {
        **document,
        "collected_at": document["collected_at"].isoformat(),
        "patient": {
            **patient,
            "birth_date": None if birth_date is None else birth_date.isoformat(),
        },
    }
