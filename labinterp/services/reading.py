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

from labinterp.domain import FindingStatus, Priority, Ruleset
from labinterp.models import Clinic, Interpretation, Panel, PanelStatus
from labinterp.repositories import panels as repo
from labinterp.repositories.interpretations import queued_ages
from labinterp.repositories.panels import PanelFilter
from labinterp.services import audit
from labinterp.services.audit import Actor
from labinterp.services.errors import InvalidInput, NotFound
from labinterp.services.review import ReviewView, reviews_by_panel


@dataclass(frozen=True)
class InterpretationView:
    """An interpretation as a reader sees it: its identity, and the document the engine
    wrote (findings, results … as stored; their shapes are schemas/output.py's)."""

    id: uuid.UUID
    panel_id: uuid.UUID
    revision: int
    ruleset: str
    created_at: dt.datetime
    status: FindingStatus
    priority: Priority
    results: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    red_flags: list[dict[str, Any]]
    contributing_factors: list[dict[str, Any]]
    follow_up: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    summary: str

    @property
    def critical_findings(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if f.get("critical")]


def interpretation_view(row: Interpretation) -> InterpretationView:
    body = row.body
    return InterpretationView(
        id=row.id,
        panel_id=row.panel_id,
        revision=row.revision,
        ruleset=row.ruleset,
        created_at=_aware(row.created_at),
        status=FindingStatus(row.status),
        priority=Priority(row.priority),
        results=list(body.get("results", [])),
        findings=list(body.get("findings", [])),
        red_flags=list(body.get("red_flags", [])),
        contributing_factors=list(body.get("contributing_factors", [])),
        follow_up=list(body.get("follow_up", [])),
        notes=list(body.get("notes", [])),
        summary=str(body.get("summary", "")),
    )


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
    @property
    def sender_flag(self) -> str | None: ...


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
    def collected_utc_offset(self) -> int: ...
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


@dataclass(frozen=True)
class PatientView:
    id: str
    sex: str
    birth_date: dt.date | None
    age_years: int | None


@dataclass(frozen=True)
class SpecimenView:
    type: str | None
    hemolyzed: bool


@dataclass(frozen=True)
class Quantity:
    value: Decimal
    unit: str


@dataclass(frozen=True)
class LabRange:
    """The performing laboratory's own range, in the result's reported unit."""

    low: Decimal | None
    high: Decimal | None
    text: str | None
    unit: str
    source: str = "lab"


@dataclass(frozen=True)
class ResultView:
    analyte: str
    loinc: str | None
    reported: Quantity
    value: Decimal  # canonical, at the ruleset's reporting precision
    unit: str
    reference_range: LabRange | None
    sender_flag: str | None = None  # the sender's own flag, verbatim


@dataclass(frozen=True)
class TwitchingView:
    sites: list[str]
    duration_days: int | None
    frequency: str | None


@dataclass(frozen=True)
class ContextView:
    twitching: TwitchingView | None
    symptoms: list[str]
    factors: list[str]
    medications: list[str]
    notes: str | None


@dataclass(frozen=True)
class PanelView:
    """A panel as the API and the review pages show it (schemas/output.PanelOut)."""

    id: uuid.UUID
    accession: str
    clinic: str
    patient: PatientView
    collected_at: dt.datetime
    specimen: SpecimenView
    revision: int
    status: str
    review_status: str | None
    failure_code: str | None
    failure: str | None
    results: list[ResultView]
    context: ContextView | None
    interpretation: InterpretationView | None
    reviews: list[ReviewView]
    created_at: dt.datetime
    updated_at: dt.datetime
    collected_utc_offset: int = 0  # minutes: the offset collected_at was sent with


def panel_document(
    head: PanelHead,
    revision: RevisionRow,
    interpretation: Interpretation | None,
    rulesets: Mapping[str, Ruleset],
    reviews: Sequence[ReviewView] = (),
) -> PanelView:
    """The panel as the API shows it: its revision's results, reported and canonical (at the
    reporting precision of the ruleset that accepted it), its context, its interpretation
    and its reviews."""
    ruleset = rulesets.get(revision.ruleset)
    return PanelView(
        id=head.id,
        accession=head.accession,
        clinic=head.clinic,
        patient=PatientView(head.patient_id, revision.sex, revision.birth_date, revision.age_years),
        collected_at=_aware(revision.collected_at),
        specimen=SpecimenView(revision.specimen_type, revision.hemolyzed),
        revision=revision.revision,
        status=head.status,
        review_status=head.review_status,
        failure_code=head.failure_code,
        failure=head.failure,
        results=[
            ResultView(
                analyte=r.analyte,
                loinc=r.loinc,
                reported=Quantity(Decimal(r.reported_value), r.reported_unit),
                value=_canonical(r.value, r.analyte, ruleset),
                unit=r.unit,
                reference_range=None
                if r.lab_low is None and r.lab_high is None and r.lab_range_text is None
                else LabRange(
                    low=None if r.lab_low is None else Decimal(r.lab_low),
                    high=None if r.lab_high is None else Decimal(r.lab_high),
                    text=r.lab_range_text,
                    unit=r.reported_unit,
                ),
                sender_flag=r.sender_flag,
            )
            for r in sorted(revision.results, key=lambda r: r.position)
        ],
        context=_context_view(revision.context),
        interpretation=None if interpretation is None else interpretation_view(interpretation),
        reviews=list(reviews),
        created_at=_aware(head.created_at),
        updated_at=_aware(head.updated_at),
        collected_utc_offset=revision.collected_utc_offset,
    )


def _context_view(ctx: ContextRow | None) -> ContextView | None:
    if ctx is None:
        return None
    twitching = ctx.twitching
    return ContextView(
        twitching=None
        if twitching is None
        else TwitchingView(
            sites=list(twitching.get("sites") or []),
            duration_days=twitching.get("duration_days"),
            frequency=twitching.get("frequency"),
        ),
        symptoms=list(ctx.symptoms or []),
        factors=list(ctx.factors or []),
        medications=list(ctx.medications or []),
        notes=ctx.notes,
    )


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
) -> PanelView:
    """The panel (its current revision, or the one asked for) with its newest interpretation
    (of that revision, when an earlier one is asked for) and its reviews.

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
        status = PanelStatus.INTERPRETED if interpretation is not None else "superseded"
    reviews = reviews_by_panel(session, [panel.id])[panel.id]
    document = panel_document(head_of(panel, status), revision, interpretation, rulesets, reviews)
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
) -> list[InterpretationView]:
    panel = _visible_panel(session, actor, panel_id)
    rows = repo.interpretations_of(session, panel.id)
    audit.record(
        session, actor, "interpretations.read", clinic_id=panel.clinic_id, panel_id=panel.id
    )
    session.commit()
    return [interpretation_view(r) for r in rows]


def list_panels(
    session: Session,
    actor: Actor,
    rulesets: Mapping[str, Ruleset],
    where: PanelFilter,
    page: int,
    per_page: int,
) -> tuple[list[PanelView], int]:
    """One page of panels. One transaction: the read is one audit event naming the page's
    panels and the filter."""
    panels, total = repo.list_panels(session, where, page, per_page)
    newest = repo.newest_interpretations(session, [p.id for p in panels])
    revisions = repo.current_revisions(session, panels)
    reviews = reviews_by_panel(session, [p.id for p in panels])
    items = [
        panel_document(head_of(p), revisions[p.id], newest.get(p.id), rulesets, reviews[p.id])
        for p in panels
    ]
    audit.record(
        session,
        actor,
        "panels.read",
        detail={
            "panel_ids": [str(p.id) for p in panels],
            "filter": audit.filter_words(where, omit=("clinic_ids",)),
        },
    )
    session.commit()
    return items, total


@dataclass(frozen=True)
class TrendPoint:
    """One result of a patient's analyte over time, in canonical units."""

    panel_id: uuid.UUID
    accession: str
    clinic: str
    collected_at: dt.datetime
    value: Decimal
    unit: str
    reported: Quantity
    interpretation: str | None  # L, LL, H, HH, N, IND; None: not interpreted yet
    critical: bool
    reference_range: dict[str, Any] | None  # the interval that judged it, as stored
    ruleset: str | None


def patient_trend(
    session: Session,
    actor: Actor,
    rulesets: Mapping[str, Ruleset],
    patient_id: str,
    analyte: str,
    page: int,
    per_page: int,
    clinic_name: str | None = None,
    *,
    audited: bool = True,
) -> tuple[list[TrendPoint], int]:
    """One analyte of one patient over time, canonical units, with the interval used.

    A patient id names one person within one clinic: a caller who reads several clinics
    where the id is used must say which (422), never get two people's values as one trend.
    One transaction: the read is one audit event naming the page's panels.
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
            TrendPoint(
                panel_id=panel.id,
                accession=panel.accession,
                clinic=clinic.name,
                collected_at=_aware(revision.collected_at),
                value=_canonical(result.value, result.analyte, rulesets.get(revision.ruleset)),
                unit=result.unit,
                reported=Quantity(Decimal(result.reported_value), result.reported_unit),
                interpretation=judged.get("interpretation") if judged else None,
                critical=bool(judged.get("critical")) if judged else False,
                reference_range=judged.get("reference_range") if judged else None,
                ruleset=newest[panel.id].ruleset if panel.id in newest else None,
            )
        )
    start = (page - 1) * per_page
    shown = items[start : start + per_page]
    if not audited:  # the caller records the read with the rest of what it shows
        return shown, len(items)
    audit.record(
        session,
        actor,
        "trend.read",
        clinic_id=rows[0][3].id,
        detail={
            "panel_ids": [str(point.panel_id) for point in shown],
            "analyte": analyte,
            "patient_id": str(rows[0][0].patient_id),  # labinterp's id, not the clinic's
        },
    )
    session.commit()
    return shown, len(items)


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
