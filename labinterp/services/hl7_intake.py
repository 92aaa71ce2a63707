"""Receiving an HL7 v2 ORU^R01 (POST /hl7/v2 and the MLLP listener): each OBR group stored as a
panel through the interop seam, the outcome answered as an ACK.

- Each OBR group is its own panel and its own transaction: a message whose second group is
  refused still stores the first (the ACK is ``AE`` and names what was wrong); sending the
  corrected message again stores the second, and the first is a repeat.
- Idempotency: (clinic, accession) plus the content hash, as for the JSON API: the same
  message again (a retransmission, whatever its MSH-10) answers ``AA`` and stores nothing.
- OBX-11 ``C`` in a group: a correction, stored as a new revision of the accession it names
  (services.panels.revise_panel). The results of the current revision whose analyte the
  correction does not name are carried into the new revision (a lab often resends the
  corrected OBX alone); a correction of an accession never received is stored as a new panel.
- OBX-11 ``P`` (or ``R``, ``S``): interpreted, and marked preliminary in the panel's
  ``context.notes`` (visible wherever the panel is shown, and part of its content): the final
  results for that accession, when they come, are a new revision rather than a conflict.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from labinterp.domain import Ruleset
from labinterp.interop.hl7 import Header, Order, Unprocessable, decode, parse_oru, read_header
from labinterp.interop.hl7_ack import AckCode, AckError, build_ack
from labinterp.interop.intake import (
    Translated,
    clinic_time_zone,
    load_document,
    sender_paths,
    source_of,
    submit_translated,
    time_zone,
)
from labinterp.models import Panel
from labinterp.repositories import panels as panel_repo
from labinterp.services.audit import Actor
from labinterp.services.clinic_codes import clinic_lookup
from labinterp.services.errors import AccessionConflict, InvalidInput, NotFound
from labinterp.services.panels import ClinicRef, Submitted, revise_panel

PRELIMINARY = "Preliminary results"
MAX_NOTED = 50  # informational ERR segments (results kept but not interpreted) per ACK

_WHERE_UNPROCESSABLE = {"200": "MSH-9", "201": "MSH-9", "203": "MSH-12", "102": "MSH"}


@dataclass(frozen=True)
class StoredOrder:
    index: int  # OBR[n]
    accession: str
    panel_id: uuid.UUID
    created: bool  # False: the same content was there already (a retransmission)
    revision: bool  # stored as a new revision of an existing accession


@dataclass(frozen=True)
class Received:
    ack: str  # ER7, segments ending in CR
    code: AckCode
    stored: tuple[StoredOrder, ...] = ()


def reject(data: bytes, text: str, code: str = "207") -> Received:
    """An ``AR`` for what never reaches the parser (too large, say), echoing MSH-10 if it can."""
    try:
        header = read_header(decode(data[:4096]))
    except Unprocessable:
        header = Header()
    return _rejected(header, Unprocessable(text, code))


def receive_oru(
    engine: Engine,
    actor: Actor,
    clinic: ClinicRef,
    data: bytes,
    ruleset: Ruleset,
    now: dt.datetime,
) -> Received:
    """Store each OBR group of the message as a panel (or a revision) and build the ACK. One
    transaction per OBR group; see the module's docstring for idempotency."""
    try:
        header = read_header(decode(data))
    except Unprocessable as exc:
        return _rejected(Header(), exc)
    with Session(engine) as session:
        codes = clinic_lookup(session, clinic.id)
    zone = time_zone(clinic_time_zone(engine, clinic.id))
    try:
        message = parse_oru(data, ruleset, codes, zone)
    except Unprocessable as exc:
        return _rejected(exc.header or header, exc)
    errors: list[AckError] = []
    noted: list[AckError] = []
    stored: list[StoredOrder] = []
    for order in message.orders:
        noted += [
            AckError(
                item["path"], f"not interpreted: {item['display']}: {item['reason']}", "0", "I"
            )
            for item in order.translated.not_interpreted
        ]
        if order.errors:
            errors += _ack_errors(order.errors)
            continue
        try:
            stored.append(_store(engine, actor, clinic, order, ruleset, now))
        except InvalidInput as exc:
            errors += _ack_errors(exc.errors)
        except AccessionConflict as exc:
            errors.append(
                AckError(
                    order.translated.paths["accession"],
                    f"{exc}; or send the corrected results with OBX-11 C (corrected)",
                    "205",
                )
            )
    code: AckCode = "AE" if errors else "AA"
    return Received(
        build_ack(
            header, code, _summary(message.orders, stored, noted), errors + noted[:MAX_NOTED]
        ),
        code,
        tuple(stored),
    )


def _store(
    engine: Engine,
    actor: Actor,
    clinic: ClinicRef,
    order: Order,
    ruleset: Ruleset,
    now: dt.datetime,
) -> StoredOrder:
    translated = order.translated
    if order.kind == "preliminary":
        translated = _marked_preliminary(order)
    accession = str(translated.document["accession"])
    if order.kind == "correction":
        with Session(engine) as session:
            existing = panel_repo.get_by_accession(session, clinic.id, accession)
            if existing is not None:
                translated = _with_unsent_results(session, existing, translated, ruleset, order)
                done = _revise(session, actor, existing.id, translated, ruleset, now)
                return StoredOrder(order.index, accession, done.panel_id, done.created, True)
    try:
        done = submit_translated(engine, actor, clinic, translated, ruleset, now)
    except AccessionConflict as conflict:
        with Session(engine) as session:
            if not _is_preliminary(session, conflict.panel_id):
                raise
            # the final (or newer preliminary) results of a preliminary panel: a new revision
            done = _revise(session, actor, conflict.panel_id, translated, ruleset, now)
            return StoredOrder(order.index, accession, done.panel_id, done.created, True)
    return StoredOrder(order.index, accession, done.panel_id, done.created, False)


def _revise(
    session: Session,
    actor: Actor,
    panel_id: uuid.UUID,
    translated: Translated,
    ruleset: Ruleset,
    now: dt.datetime,
) -> Submitted:
    document = load_document(translated)
    try:
        return revise_panel(
            session, actor, panel_id, document, ruleset, now, source=source_of(translated)
        )
    except InvalidInput as exc:
        raise InvalidInput(sender_paths(exc.errors, translated.paths)) from None
    except NotFound:  # pragma: no cover - found by accession in this clinic a moment ago
        raise


_RESULT_KEYS = ("analyte", "loinc", "value", "unit", "reference_range", "sender_flag")


def _with_unsent_results(
    session: Session, panel: Panel, translated: Translated, ruleset: Ruleset, order: Order
) -> Translated:
    """A correction's results, with the current revision's results of the analytes it does
    not name carried over: a lab that corrects one OBX often resends that OBX alone, and a
    result left out of a correction is not a result withdrawn (that is OBX-11 D, which names
    it). The carried results name the OBR group in an error."""

    def analyte(result: dict[str, Any]) -> str | None:
        if result.get("analyte"):
            return ruleset.alias_index.get(str(result["analyte"]).casefold())
        code = ruleset.loinc_index.get(str(result.get("loinc") or ""))
        return code.analyte if code is not None else None

    current = panel_repo.get_revision(session, panel.id, panel.current_revision)
    stored = list(((current.body if current else None) or {}).get("results") or [])
    results = list(translated.document["results"])
    named = {analyte(r) for r in results} | {
        ruleset.loinc_index[item["code"]].analyte
        for item in translated.not_interpreted
        if item["code"] in ruleset.loinc_index
    }
    paths = dict(translated.paths)
    for old in stored:
        if analyte(old) is None or analyte(old) in named:
            continue
        carried = {k: old[k] for k in _RESULT_KEYS if old.get(k) is not None}
        if isinstance(carried.get("reference_range"), dict):
            kept = {k: v for k, v in carried["reference_range"].items() if v is not None}
            carried["reference_range"] = kept
        paths[f"results.{len(results)}"] = f"OBR[{order.index}]"
        results.append(carried)
    return replace(translated, document={**translated.document, "results": results}, paths=paths)


def _marked_preliminary(order: Order) -> Translated:
    translated = order.translated
    where = ", ".join(
        translated.paths[f"results.{i}"] for i in range(len(translated.document["results"]))
    )
    note = (
        f"{PRELIMINARY} (HL7 v2 OBX-11 P, R or S; {where}): interpreted as sent; the "
        "laboratory's final results are to follow."
    )
    document: dict[str, Any] = {**translated.document, "context": {"notes": note}}
    paths = {**translated.paths, "context": f"OBR[{order.index}]"}
    return replace(translated, document=document, paths=paths)


def _is_preliminary(session: Session, panel_id: uuid.UUID) -> bool:
    """Whether the panel's current revision was stored from preliminary results."""
    panel = session.get(Panel, panel_id)
    if panel is None:
        return False
    revision = panel_repo.get_revision(session, panel_id, panel.current_revision)
    notes = ((revision.body or {}).get("context") or {}).get("notes") if revision else None
    return isinstance(notes, str) and notes.startswith(PRELIMINARY)


_FIELD = re.compile(r"-(\d+)$")


def _ack_errors(errors: dict[str, list[str]]) -> list[AckError]:
    return [
        AckError(path, text, _error_code(path, text))
        for path, texts in errors.items()
        for text in texts
    ]


def _error_code(path: str, text: str) -> str:
    """HL7 table 0357's code for an error at ``path``: 101 a required field missing, 103 a
    code or unit not known (OBX-3, OBX-6), 102 a value that is not what the field holds."""
    lowered = text.lower()
    if "required" in lowered or lowered.startswith(("missing", "no ")):
        return "101"
    match = _FIELD.search(path)
    if match is None:
        return "103" if lowered.startswith("none of") else "207"
    return "103" if match.group(1) in ("3", "6") else "102"


def _summary(orders: tuple[Order, ...], stored: list[StoredOrder], noted: list[AckError]) -> str:
    new = sum(1 for s in stored if s.created)
    parts = [f"{len(stored)} of {len(orders)} OBR groups stored ({new} new)"]
    if noted:
        parts.append(f"{len(noted)} result{'s' if len(noted) != 1 else ''} not interpreted")
    if len(stored) < len(orders):
        parts.append("see ERR")
    return "; ".join(parts)


def _rejected(header: Header, exc: Unprocessable) -> Received:
    where = _WHERE_UNPROCESSABLE.get(exc.code, "")
    return Received(build_ack(header, "AR", exc.text, [AckError(where, exc.text, exc.code)]), "AR")
