"""Queries about panels, their revisions and interpretations."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, and_, exists, func, select
from sqlalchemy.orm import Session, selectinload

from labinterp.domain import FindingStatus
from labinterp.models import (
    Clinic,
    Interpretation,
    InterpretationCode,
    Panel,
    PanelRevision,
    PanelStatus,
    Patient,
    Result,
)

PANEL_STATUSES = tuple(s.value for s in PanelStatus)
FINDING_STATUSES = tuple(s.value for s in FindingStatus)


@dataclass(frozen=True)
class PanelFilter:
    clinic_ids: Collection[uuid.UUID] | None  # None: every clinic (admin)
    accession: str | None = None
    patient_id: str | None = None
    flags: tuple[str, ...] = ()  # any of these codes
    status: str | None = None
    collected_from: dt.datetime | None = None
    collected_to: dt.datetime | None = None


def get_panel(
    session: Session, panel_id: uuid.UUID, clinic_ids: Collection[uuid.UUID] | None
) -> Panel | None:
    """The panel, or None when it does not exist or belongs to a clinic the caller cannot see."""
    stmt = (
        select(Panel)
        .where(Panel.id == panel_id)
        .options(selectinload(Panel.patient), selectinload(Panel.clinic))
    )
    if clinic_ids is not None:
        stmt = stmt.where(Panel.clinic_id.in_(list(clinic_ids)))
    return session.scalars(stmt).one_or_none()


def get_by_accession(session: Session, clinic_id: uuid.UUID, accession: str) -> Panel | None:
    return session.scalars(
        select(Panel).where(Panel.clinic_id == clinic_id, Panel.accession == accession)
    ).one_or_none()


def current_hashes(
    session: Session, clinic_id: uuid.UUID, accessions: Collection[str]
) -> dict[str, tuple[uuid.UUID, str]]:
    """Which of ``accessions`` the clinic has already, each with its panel id and the content
    hash of its current revision: one query for a batch of them."""
    rows = session.execute(
        select(Panel.accession, Panel.id, PanelRevision.content_hash)
        .join(
            PanelRevision,
            and_(
                PanelRevision.panel_id == Panel.id,
                PanelRevision.revision == Panel.current_revision,
            ),
        )
        .where(Panel.clinic_id == clinic_id, Panel.accession.in_(list(accessions)))
    )
    return {accession: (panel_id, digest) for accession, panel_id, digest in rows}


def get_revision(session: Session, panel_id: uuid.UUID, revision: int) -> PanelRevision | None:
    return session.scalars(
        select(PanelRevision)
        .where(PanelRevision.panel_id == panel_id, PanelRevision.revision == revision)
        .options(selectinload(PanelRevision.results), selectinload(PanelRevision.context))
    ).one_or_none()


def revision_hashes(session: Session, panel_id: uuid.UUID) -> dict[str, int]:
    rows = session.execute(
        select(PanelRevision.content_hash, PanelRevision.revision).where(
            PanelRevision.panel_id == panel_id
        )
    )
    return {h: r for h, r in rows}


def newest_interpretation(
    session: Session, panel_id: uuid.UUID, revision: int
) -> Interpretation | None:
    """The newest interpretation of that revision (of any ruleset), or None."""
    return session.scalars(
        select(Interpretation)
        .where(Interpretation.panel_id == panel_id, Interpretation.revision == revision)
        .order_by(Interpretation.created_at.desc(), Interpretation.revision.desc())
        .limit(1)
    ).first()


def newest_interpretations(
    session: Session, panel_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Interpretation]:
    if not panel_ids:
        return {}
    # of each panel's current revision: an older revision's findings never stand beside
    # the current values
    newest = (
        select(Interpretation.panel_id, func.max(Interpretation.created_at).label("at"))
        .join(Panel, Panel.id == Interpretation.panel_id)
        .where(
            Interpretation.panel_id.in_(list(panel_ids)),
            Interpretation.revision == Panel.current_revision,
        )
        .group_by(Interpretation.panel_id)
        .subquery()
    )
    rows = session.scalars(
        select(Interpretation).join(
            newest,
            and_(
                Interpretation.panel_id == newest.c.panel_id,
                Interpretation.created_at == newest.c.at,
            ),
        )
    )
    return {i.panel_id: i for i in rows}


def current_revisions(session: Session, panels: Sequence[Panel]) -> dict[uuid.UUID, PanelRevision]:
    """Each panel's current revision with its results and context, in one round trip."""
    if not panels:
        return {}
    rows = session.scalars(
        select(PanelRevision)
        .join(
            Panel,
            and_(
                Panel.id == PanelRevision.panel_id, Panel.current_revision == PanelRevision.revision
            ),
        )
        .where(Panel.id.in_([p.id for p in panels]))
        .options(selectinload(PanelRevision.results), selectinload(PanelRevision.context))
    )
    return {r.panel_id: r for r in rows}


def interpretations_of(session: Session, panel_id: uuid.UUID) -> list[Interpretation]:
    return list(
        session.scalars(
            select(Interpretation)
            .where(Interpretation.panel_id == panel_id)
            .order_by(Interpretation.created_at.desc(), Interpretation.revision.desc())
        )
    )


def _newest_interpretation_id_of_panel() -> Select[tuple[uuid.UUID]]:
    inner = Interpretation.__table__.alias("newest")
    return (
        select(inner.c.id)
        .where(inner.c.panel_id == Panel.id, inner.c.revision == Panel.current_revision)
        .order_by(inner.c.created_at.desc(), inner.c.revision.desc())
        .limit(1)
        .correlate(Panel)  # to the outer panels row, through the EXISTS between them
    )


def list_panels(
    session: Session, where: PanelFilter, page: int, per_page: int
) -> tuple[list[Panel], int]:
    stmt = select(Panel)
    if where.clinic_ids is not None:
        stmt = stmt.where(Panel.clinic_id.in_(list(where.clinic_ids)))
    if where.accession:
        stmt = stmt.where(Panel.accession == where.accession)
    if where.patient_id:
        stmt = stmt.join(Patient, Patient.id == Panel.patient_id).where(
            Patient.external_id == where.patient_id
        )
    if where.collected_from:
        stmt = stmt.where(Panel.collected_at >= where.collected_from)
    if where.collected_to:
        stmt = stmt.where(Panel.collected_at <= where.collected_to)
    newest_id = _newest_interpretation_id_of_panel().scalar_subquery()
    if where.status in PANEL_STATUSES:
        stmt = stmt.where(Panel.status == where.status)
    elif where.status in FINDING_STATUSES:
        stmt = stmt.where(
            exists().where(Interpretation.id == newest_id, Interpretation.status == where.status)
        )
    if where.flags:
        stmt = stmt.where(
            exists().where(
                InterpretationCode.interpretation_id == newest_id,
                InterpretationCode.code.in_(where.flags),
            )
        )
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.options(selectinload(Panel.patient), selectinload(Panel.clinic))
        .order_by(Panel.collected_at.desc(), Panel.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return list(rows), int(total)


def trend_rows(
    session: Session,
    clinic_ids: Collection[uuid.UUID] | None,
    patient_external_id: str,
    analyte: str,
) -> list[tuple[Panel, PanelRevision, Result, Clinic]]:
    if "\x00" in patient_external_id:  # no stored id holds NUL, and PostgreSQL refuses it
        return []
    stmt = (
        select(Panel, PanelRevision, Result, Clinic)
        .join(Patient, Patient.id == Panel.patient_id)
        .join(Clinic, Clinic.id == Panel.clinic_id)
        .join(
            PanelRevision,
            and_(
                PanelRevision.panel_id == Panel.id, PanelRevision.revision == Panel.current_revision
            ),
        )
        .join(Result, and_(Result.revision_id == PanelRevision.id, Result.analyte == analyte))
        .where(Patient.external_id == patient_external_id)
        .order_by(PanelRevision.collected_at, Panel.id)
    )
    if clinic_ids is not None:
        stmt = stmt.where(Panel.clinic_id.in_(list(clinic_ids)))
    return [(p, r, res, c) for p, r, res, c in session.execute(stmt)]
