"""The seam every input format goes through: a FHIR Bundle, an HL7 v2 message or the JSON API's
own body is translated into the API's panel document, which is then accepted exactly as a
``POST /api/v1/panels`` body is (same schema, same acceptance rules, same idempotency).

A translator (fhir_in, hl7_in …) builds a :class:`Translated`: the document, where each of its
fields came from in the sender's terms (so that an error names ``OBX[2]-6`` or
``Bundle.entry[3].resource.valueQuantity.code``, not ``results.1.unit``), what it kept but did
not judge, and the original text. :func:`submit_translated` does the rest.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from labinterp.domain import Ruleset
from labinterp.models import Clinic
from labinterp.schemas.messages import flatten_messages
from labinterp.schemas.panels import PanelIn
from labinterp.services.audit import Actor
from labinterp.services.errors import InvalidInput, in_sender_terms
from labinterp.services.panels import ClinicRef, Source, Submitted, submit_panel


@dataclass(frozen=True)
class Translated:
    """A sender's document as the API's panel body, with the way back to the sender's terms."""

    # the API.md panel body, JSON-shaped exactly as POST /api/v1/panels takes it; each result
    # may also carry "sender_flag" (the sender's flag text, e.g. "L", "HH", "N", "A")
    document: dict[str, Any]
    # API error path -> the sender's path: "results.1.unit" ->
    # "Bundle.entry[3].resource.valueQuantity.code", or "OBX[2]-6"; "accession" -> "OBR-3"
    paths: dict[str, str]
    # kept but not judged: {"path", "code", "display", "reason"}
    not_interpreted: list[dict[str, str]] = field(default_factory=list)
    source_format: str = "json"  # models.SourceFormat: "fhir" | "hl7v2" | "json"
    source_text: str = ""  # the original document exactly as received


def sender_paths(errors: dict[str, list[str]], paths: dict[str, str]) -> dict[str, list[str]]:
    """``errors`` keyed by the sender's paths: each API path through ``paths``; a path not
    mapped itself takes its nearest mapped parent's (``results.1.reference_range.low`` ->
    ``OBX[2]`` when only ``results.1`` is mapped); with none, the API path stays."""
    return in_sender_terms(errors, paths)


def load_document(translated: Translated) -> dict[str, Any]:
    """``translated.document`` loaded by the API's own ``PanelIn``; InvalidInput in the
    sender's paths."""
    try:
        loaded: dict[str, Any] = PanelIn().load(translated.document)
    except ValidationError as exc:
        raise InvalidInput(sender_paths(flatten_messages(exc.messages), translated.paths)) from None
    return loaded


def submit_translated(
    engine: Engine,
    actor: Actor,
    clinic: ClinicRef,
    translated: Translated,
    ruleset: Ruleset,
    now: dt.datetime,
) -> Submitted:
    """Accept a translated document as a new accession (services.panels.submit_panel: one
    durable write; idempotency key (clinic, accession) plus the content hash, so a
    retransmission is a repeat and changed content a conflict), storing the original document
    and what was not interpreted beside the revision. Errors name the sender's paths."""
    document = load_document(translated)
    try:
        return submit_panel(
            engine, actor, clinic, document, ruleset, now, source=source_of(translated)
        )
    except InvalidInput as exc:
        raise InvalidInput(sender_paths(exc.errors, translated.paths)) from None


def source_of(translated: Translated) -> Source:
    """What is stored beside the revision about where it came from."""
    return Source(
        format=translated.source_format,
        document=translated.source_text,
        not_interpreted=list(translated.not_interpreted),
    )


# --- local times ------------------------------------------------------------------------------


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name``; ValueError naming it when there is no such zone."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Brussels or UTC"
        ) from exc


def clinic_time_zone(engine: Engine, clinic_id: uuid.UUID) -> str:
    """The clinic's time zone setting (``UTC`` unless set)."""
    with Session(engine) as session:
        name = session.scalar(select(Clinic.time_zone).where(Clinic.id == clinic_id))
    return name or "UTC"


def in_clinic_time(moment: dt.datetime, zone: str) -> dt.datetime:
    """``moment`` as an aware date-time: one without a UTC offset is a wall-clock time in the
    clinic's ``zone`` (in a repeated hour, the first; in a skipped hour, as if the clock had
    not yet gone forward, as zoneinfo reads it); one with an offset is left as it is."""
    if moment.tzinfo is not None and moment.utcoffset() is not None:
        return moment
    return moment.replace(tzinfo=time_zone(zone))


def iso_in_clinic_time(moment: dt.datetime, zone: str) -> str:
    """:func:`in_clinic_time` as ISO 8601 text with its offset (what a document carries)."""
    aware = in_clinic_time(moment, zone)
    fixed = dt.timezone(aware.utcoffset() or dt.timedelta())
    return aware.replace(tzinfo=fixed).isoformat()
