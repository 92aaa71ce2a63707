"""Reading panels, interpretations and trends as documents for the API."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from labinterp.domain import Ruleset
from labinterp.models import Clinic, Interpretation, Panel, PanelStatus
from labinterp.repositories import panels as repo
from labinterp.repositories.interpretations import queued_ages
from labinterp.repositories.panels import PanelFilter
from labinterp.services import audit
from labinterp.services.audit import Actor
from labinterp.services.errors import InvalidInput, NotFound


def interpretation_document(row: Interpretation) -> dict[str, Any]:
    body = dict(row.body)
    body.pop("ruleset", None)
    return {
        "id": row.id,
        "panel_id": row.panel_id,
        "revision": row.revision,
        "ruleset": row.ruleset,
        "created_at": _aware(row.created_at),
        **body,
    }


class ResultRow(Protocol):
    """A stored result (the model, or the values a POST just wrote)."""

    @property
    def position(self) -> int: ...
    @property
    def analyte(self) -> str: ...
    @property
    def loinc(self) -> str | None: ...
    @property
    def reported_value(self) -> str: ...
    @property
    def reported_unit(self) -> str: ...
    @property
    def value(self) -> Decimal: ...
    @property
    def unit(self) -> str: ...
    @property
    def lab_low(self) -> str | None: ...
    @property
    def lab_high(self) -> str | None: ...
    @property
    def lab_range_text(self) -> str | None: ...


class ContextRow(Protocol):
    @property
    def twitching(self) -> dict[str, Any] | None: ...
    @property
    def symptoms(self) -> list[str]: ...
    @property
    def factors(self) -> list[str]: ...
    @property
    def medications(self) -> list[str]: ...
    @property
    def notes(self) -> str | None: ...


class RevisionRow(Protocol):
    """A stored revision (the model, or what a POST just wrote)."""

    @property
    def revision(self) -> int: ...
    @property
    def ruleset(self) -> str: ...
    @property
    def collected_at(self) -> dt.datetime: ...
    @property
    def sex(self) -> str: ...
    @property
    def birth_date(self) -> dt.date | None: ...
    @property
    def age_years(self) -> int | None: ...
    @property
    def hemolyzed(self) -> bool: ...
    @property
    def specimen_type(self) -> str | None: ...
    @property
    def results(self) -> Sequence[ResultRow]: ...
    @property
    def context(self) -> ContextRow | None: ...


@dataclass(frozen=True)
class PanelHead:
    """What a panel document says of the panel itself, beside its revision."""

    id: uuid.UUID
    accession: str
    clinic: str
    patient_id: str
    status: str
    review_status: str | None
    failure_code: str | None
    failure: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


def head_of(panel: Panel, status: str | None = None) -> PanelHead:
    return PanelHead(
        id=panel.id,
        accession=panel.accession,
        clinic=panel.clinic.name,
        patient_id=panel.patient.external_id,
        status=status or panel.status,
        review_status=panel.review_status,
        failure_code=panel.failure_code,
        failure=panel.failure,
        created_at=panel.created_at,
        updated_at=panel.updated_at,
    )


def panel_document(
    head: PanelHead,
    revision: RevisionRow,
    interpretation: Interpretation | None,
    rulesets: Mapping[str, Ruleset],
) -> dict[str, Any]:
    """The panel as the API shows it: its revision's results, reported and canonical (at the
    reporting precision of the ruleset that accepted it), its context, its interpretation."""
    ctx = revision.context
    ruleset = rulesets.get(revision.ruleset)
    return {
        "id": head.id,
        "accession": head.accession,
        "clinic": head.clinic,
        "patient": {
            "id": head.patient_id,
            "sex": revision.sex,
            "birth_date": revision.birth_date,
            "age_years": revision.age_years,
        },
        "collected_at": _aware(revision.collected_at),
        "specimen": {"type": revision.specimen_type, "hemolyzed": revision.hemolyzed},
        "revision": revision.revision,
        "status": head.status,
        "failure_code": head.failure_code,
        "failure": head.failure,
        "results": [
            {
                "analyte": r.analyte,
                "loinc": r.loinc,
                "reported": {"value": Decimal(r.reported_value), "unit": r.reported_unit},
                "value": _canonical(r.value, r.analyte, ruleset),
                "unit": r.unit,
                "reference_range": None
                if r.lab_low is None and r.lab_high is None and r.lab_range_text is None
                else {
                    "low": None if r.lab_low is None else Decimal(r.lab_low),
                    "high": None if r.lab_high is None else Decimal(r.lab_high),
                    "text": r.lab_range_text,
                    "unit": r.reported_unit,
                    "source": "lab",
                },
            }
            for r in sorted(revision.results, key=lambda r: r.position)
        ],
        "context": None
        if ctx is None
        else {
            "twitching": ctx.twitching,
            "symptoms": ctx.symptoms,
            "factors": ctx.factors,
            "medications": ctx.medications,
            "notes": ctx.notes,
        },
        "interpretation": None
        if interpretation is None
        else interpretation_document(interpretation),
        "created_at": _aware(head.created_at),
        "updated_at": _aware(head.updated_at),
    }


def _visible_panel(session: Session, actor: Actor, panel_id: uuid.UUID) -> Panel:
    panel = repo.get_panel(session, panel_id, actor.clinic_ids)
    if panel is None:
        raise NotFound("panel")
    return panel


def read_panel(
    session: Session,
    actor: Actor,
    rulesets: Mapping[str, Ruleset],
    panel_id: uuid.UUID,
    revision_number: int | None = None,
    *,
    audited: bool = True,
) -> dict[str, Any]:
    """The panel (its current revision, or the one asked for) with its newest interpretation
    (of that revision, when an earlier one is asked for).

    One transaction: the read is audited.
    """
    panel = _visible_panel(session, actor, panel_id)
    revision = repo.get_revision(session, panel.id, revision_number or panel.current_revision)
    if revision is None:
        raise NotFound(f"revision {revision_number}")
    if revision.revision == panel.current_revision:
        interpretation = repo.newest_interpretation(session, panel.id, revision.revision)
    else:
        interpretation = next(
            (
                i
                for i in repo.interpretations_of(session, panel.id)
                if i.revision == revision.revision
            ),
            None,
        )
    status = None
    if revision.revision != panel.current_revision:
        # an earlier revision: interpreted, or replaced by a correction before its turn came
        status = "interpreted" if interpretation is not None else "superseded"
    document = panel_document(head_of(panel, status), revision, interpretation, rulesets)
    if audited:
        audit.record(
            session,
            actor,
            "panel.read",
            clinic_id=panel.clinic_id,
            panel_id=panel.id,
            detail={"revision": revision.revision},
        )
        session.commit()
    return document


def read_interpretations(
    session: Session, actor: Actor, panel_id: uuid.UUID
) -> list[dict[str, Any]]:
    panel = _visible_panel(session, actor, panel_id)
    rows = repo.interpretations_of(session, panel.id)
    audit.record(
        session, actor, "interpretations.read", clinic_id=panel.clinic_id, panel_id=panel.id
    )
    session.commit()
    return [interpretation_document(r) for r in rows]


def list_panels(
    session: Session,
    rulesets: Mapping[str, Ruleset],
    where: PanelFilter,
    page: int,
    per_page: int,
) -> tuple[list[dict[str, Any]], int]:
    panels, total = repo.list_panels(session, where, page, per_page)
    newest = repo.newest_interpretations(session, [p.id for p in panels])
    revisions = repo.current_revisions(session, panels)
    items = [
        panel_document(head_of(p), revisions[p.id], newest.get(p.id), rulesets) for p in panels
    ]
    return items, total


def patient_trend(
    session: Session,
    actor: Actor,
    rulesets: Mapping[str, Ruleset],
    patient_id: str,
    analyte: str,
    page: int,
    per_page: int,
    clinic_name: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """One analyte of one patient over time, canonical units, with the interval used.

    A patient id names one person within one clinic: a caller who reads several clinics
    where the id is used must say which (422), never get two people's values as one trend.
    """
    rows = repo.trend_rows(session, actor.clinic_ids, patient_id, analyte)
    if clinic_name is not None:
        rows = [row for row in rows if row[3].name == clinic_name]
    if not rows:
        raise NotFound("patient results")
    clinics = sorted({row[3].name for row in rows})
    if len(clinics) > 1:
        raise InvalidInput(
            {
                "clinic": [
                    f"patient {patient_id!r} is in {len(clinics)} clinics "
                    f"({', '.join(clinics)}): add ?clinic= to choose one"
                ]
            }
        )
    newest = repo.newest_interpretations(session, [p.id for p, _, _, _ in rows])
    items = []
    for panel, revision, result, clinic in rows:
        judged = _result_in(newest.get(panel.id), analyte)
        items.append(
            {
                "panel_id": panel.id,
                "accession": panel.accession,
                "clinic": clinic.name,
                "collected_at": _aware(revision.collected_at),
                "value": _canonical(result.value, result.analyte, rulesets.get(revision.ruleset)),
                "unit": result.unit,
                "reported": {"value": Decimal(result.reported_value), "unit": result.reported_unit},
                "interpretation": judged.get("interpretation") if judged else None,
                "reference_range": judged.get("reference_range") if judged else None,
                "ruleset": newest[panel.id].ruleset if panel.id in newest else None,
            }
        )
    start = (page - 1) * per_page
    return items[start : start + per_page], len(items)


def _result_in(row: Interpretation | None, analyte: str) -> dict[str, Any] | None:
    if row is None:
        return None
    for result in row.body.get("results", []):
        if result.get("analyte") == analyte:
            return dict(result)
    return None


def _canonical(value: Decimal, analyte: str, ruleset: Ruleset | None) -> Decimal:
    """A stored canonical value at its analyte's reporting precision in the ruleset that
    accepted it: 0.700000 reads 0.70, as the interpretation reports it."""
    known = ruleset.analytes.get(analyte) if ruleset is not None else None
    if known is None:
        return _plain(value)
    return value.quantize(Decimal(1).scaleb(-known.precision))


def _plain(value: Decimal) -> Decimal:
    """A stored canonical value without the column's padding: 0.450000 reads 0.45, never 4.5E-1."""
    stripped = value.normalize()
    return stripped.quantize(Decimal(1)) if stripped.as_tuple().exponent > 0 else stripped  # type: ignore[operator]


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class FailedPanel:
    id: uuid.UUID
    clinic: str
    accession: str
    code: str
    reason: str


def failed_panels(session: Session, limit: int) -> list[FailedPanel]:
    """The panels that ended `failed`, most recent first, with why."""
    rows = session.execute(
        select(Panel.id, Clinic.name, Panel.accession, Panel.failure_code, Panel.failure)
        .join(Clinic, Clinic.id == Panel.clinic_id)
        .where(Panel.status == PanelStatus.FAILED)
        .order_by(Panel.updated_at.desc())
        .limit(limit)
    )
    return [
        FailedPanel(pid, clinic, accession, code or "unknown", reason or "")
        for pid, clinic, accession, code, reason in rows
    ]


def queue_state(session: Session, now: dt.datetime) -> tuple[int, float]:
    """How many panels wait for their interpretation, and how long the oldest has waited
    (seconds; 0 when none waits)."""
    count, oldest = queued_ages(session)
    return count, 0.0 if oldest is None else max(0.0, (now - _aware(oldest)).total_seconds())
