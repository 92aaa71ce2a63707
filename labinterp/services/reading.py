"""Reading panels, interpretations and trends as documents for the API."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from labinterp.models import Interpretation, Panel, PanelRevision
from labinterp.repositories import panels as repo
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


def panel_document(
    panel: Panel,
    revision: PanelRevision,
    interpretation: Interpretation | None,
    status: str | None = None,
) -> dict[str, Any]:
    ctx = revision.context
    return {
        "id": panel.id,
        "accession": panel.accession,
        "clinic": panel.clinic.name,
        "patient": {
            "id": panel.patient.external_id,
            "sex": revision.sex,
            "birth_date": revision.birth_date,
            "age_years": revision.age_years,
        },
        "collected_at": _aware(revision.collected_at),
        "specimen": {"type": revision.specimen_type, "hemolyzed": revision.hemolyzed},
        "revision": revision.revision,
        "status": status or panel.status,
        "failure": panel.failure,
        "results": [
            {
                "analyte": r.analyte,
                "loinc": r.loinc,
                "reported": {"value": Decimal(r.reported_value), "unit": r.reported_unit},
                "value": _canonical(r.value, r.analyte),
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
        "created_at": _aware(panel.created_at),
        "updated_at": _aware(panel.updated_at),
    }


def _visible_panel(session: Session, actor: Actor, panel_id: uuid.UUID) -> Panel:
    panel = repo.get_panel(session, panel_id, actor.clinic_ids)
    if panel is None:
        raise NotFound("panel")
    return panel


def read_panel(
    session: Session,
    actor: Actor,
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
    document = panel_document(panel, revision, interpretation, status)
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
    session: Session, where: PanelFilter, page: int, per_page: int
) -> tuple[list[dict[str, Any]], int]:
    panels, total = repo.list_panels(session, where, page, per_page)
    newest = repo.newest_interpretations(session, [p.id for p in panels])
    revisions = repo.current_revisions(session, panels)
    items = [panel_document(p, revisions[p.id], newest.get(p.id)) for p in panels]
    return items, total


def patient_trend(
    session: Session,
    actor: Actor,
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
                "value": _canonical(result.value, result.analyte),
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


def _canonical(value: Decimal, analyte: str) -> Decimal:
    """A stored canonical value at its analyte's reporting precision: 0.700000 reads 0.70,
    as the interpretation reports it."""
    from labinterp.runtime import get_runtime

    rt = get_runtime()
    ruleset = rt.rulesets.get(rt.settings.default_ruleset)
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
