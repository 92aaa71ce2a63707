"""Writing a new accession: its patient, the panel, revision 1 with its results and context,
and the audit event, made durable in one round trip.

The hottest write of the service (every POST), so it bypasses the ORM's unit of work:

* PostgreSQL: one statement of data-modifying CTEs, which the caller may run in autocommit
  (``labinterp.db.durable_write``): the statement is then its own transaction, one round
  trip and one commit, durable when it returns. Its text never changes (the results go in as
  arrays, unnested), so psycopg prepares it once per connection.
* SQLite: the same rows, statement by statement, in the caller's transaction (no network to
  save).

The panel's (clinic, accession) is unique: a second panel with the same accession raises
``IntegrityError`` and nothing at all is written (the whole statement, or transaction, rolls
back, the patient's update included).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import insert as sa_insert

from labinterp import jsontext
from labinterp.models import AuditEvent, Panel, PanelContext, PanelRevision, PanelStatus, Result
from labinterp.models import Patient as PatientRow
from labinterp.repositories.dialects import insert


@dataclass(frozen=True)
class NewResult:
    position: int
    analyte: str
    loinc: str | None
    reported_value: str  # verbatim decimal text
    reported_unit: str
    value: Decimal  # canonical
    unit: str
    lab_low: str | None
    lab_high: str | None
    lab_range_text: str | None


@dataclass(frozen=True)
class NewContext:
    twitching: dict[str, Any] | None
    symptoms: list[str]
    factors: list[str]
    medications: list[str]
    notes: str | None


@dataclass(frozen=True)
class NewRevision:
    id: uuid.UUID
    revision: int
    ruleset: str
    content_hash: str
    collected_at: dt.datetime
    collected_utc_offset: int
    sex: str
    birth_date: dt.date | None
    age_years: int | None
    hemolyzed: bool
    specimen_type: str | None
    body: dict[str, Any]
    created_at: dt.datetime
    created_by: str
    results: tuple[NewResult, ...]
    context: NewContext


@dataclass(frozen=True)
class NewPanel:
    id: uuid.UUID
    clinic_id: uuid.UUID
    accession: str
    patient_id: str  # the clinic's own id of the patient
    patient_sex: str
    patient_birth_date: dt.date | None
    collected_at: dt.datetime
    created_at: dt.datetime
    revision: NewRevision
    actor: str  # for the audit trail
    role: str


def insert_new_panel(conn: Connection, panel: NewPanel) -> None:
    """Write ``panel``: on PostgreSQL as one statement (atomic even in autocommit), on SQLite
    as several in the caller's transaction. Never commits."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_POSTGRES_INSERT, _postgres_parameters(panel))
    else:
        _insert_rows(conn, panel)


_POSTGRES_INSERT = """
WITH patient AS (
    INSERT INTO patients (id, clinic_id, external_id, sex, birth_date, created_at, updated_at)
    VALUES (%(patient_row_id)s, %(clinic_id)s, %(patient_id)s, %(sex)s, %(birth_date)s,
            %(now)s, %(now)s)
    ON CONFLICT (clinic_id, external_id) DO UPDATE SET
        sex = CASE WHEN EXCLUDED.sex <> 'unknown' THEN EXCLUDED.sex ELSE patients.sex END,
        birth_date = COALESCE(EXCLUDED.birth_date, patients.birth_date),
        updated_at = EXCLUDED.updated_at
    RETURNING id
), panel AS (
    INSERT INTO panels (id, clinic_id, patient_id, accession, status, current_revision,
                        collected_at, created_at, updated_at, enqueued_at, attempts)
    SELECT %(panel_id)s, %(clinic_id)s, patient.id, %(accession)s, %(status)s, 1,
           %(collected_at)s, %(now)s, %(now)s, %(now)s, 0
    FROM patient
    RETURNING id
), revision AS (
    INSERT INTO panel_revisions (id, panel_id, revision, content_hash, collected_at, sex,
                                 birth_date, age_years, hemolyzed, specimen_type, ruleset,
                                 collected_utc_offset, body, created_at, created_by)
    SELECT %(revision_id)s, panel.id, 1, %(content_hash)s, %(collected_at)s, %(sex)s,
           %(birth_date)s, %(age_years)s, %(hemolyzed)s, %(specimen_type)s, %(ruleset)s,
           %(collected_utc_offset)s, %(body)s::jsonb, %(now)s, %(created_by)s
    FROM panel
    RETURNING id
), results AS (
    INSERT INTO results (revision_id, position, analyte, loinc, reported_value, reported_unit,
                         value, unit, lab_low, lab_high, lab_range_text)
    SELECT revision.id, r.position, r.analyte, r.loinc, r.reported_value, r.reported_unit,
           r.value, r.unit, r.lab_low, r.lab_high, r.lab_range_text
    FROM revision, unnest(%(r_position)s::int[], %(r_analyte)s::text[], %(r_loinc)s::text[],
                          %(r_reported_value)s::text[], %(r_reported_unit)s::text[],
                          %(r_value)s::numeric[], %(r_unit)s::text[], %(r_lab_low)s::text[],
                          %(r_lab_high)s::text[], %(r_lab_range_text)s::text[])
        AS r(position, analyte, loinc, reported_value, reported_unit, value, unit, lab_low,
             lab_high, lab_range_text)
), context AS (
    INSERT INTO panel_contexts (revision_id, twitching, symptoms, factors, medications, notes)
    SELECT revision.id, %(twitching)s::jsonb, %(symptoms)s::jsonb, %(factors)s::jsonb,
           %(medications)s::jsonb, %(notes)s
    FROM revision
), audit AS (
    INSERT INTO audit_events (at, actor, role, action, clinic_id, panel_id, detail)
    SELECT %(now)s, %(actor)s, %(role)s, 'panel.create', %(clinic_id)s, panel.id,
           %(audit_detail)s::jsonb
    FROM panel
)
SELECT id FROM panel
"""


def _json(value: Any) -> str | None:
    return None if value is None else jsontext.dumps(value)


def _postgres_parameters(panel: NewPanel) -> dict[str, Any]:
    revision, context = panel.revision, panel.revision.context
    results = revision.results
    return {
        "patient_row_id": uuid.uuid4(),
        "clinic_id": panel.clinic_id,
        "patient_id": panel.patient_id,
        "sex": panel.patient_sex,
        "birth_date": panel.patient_birth_date,
        "now": panel.created_at,
        "panel_id": panel.id,
        "accession": panel.accession,
        "status": PanelStatus.QUEUED.value,
        "collected_at": panel.collected_at,
        "revision_id": revision.id,
        "content_hash": revision.content_hash,
        "age_years": revision.age_years,
        "hemolyzed": revision.hemolyzed,
        "specimen_type": revision.specimen_type,
        "ruleset": revision.ruleset,
        "collected_utc_offset": revision.collected_utc_offset,
        "body": jsontext.dumps(revision.body),
        "created_by": revision.created_by,
        "r_position": [r.position for r in results],
        "r_analyte": [r.analyte for r in results],
        "r_loinc": [r.loinc for r in results],
        "r_reported_value": [r.reported_value for r in results],
        "r_reported_unit": [r.reported_unit for r in results],
        "r_value": [r.value for r in results],
        "r_unit": [r.unit for r in results],
        "r_lab_low": [r.lab_low for r in results],
        "r_lab_high": [r.lab_high for r in results],
        "r_lab_range_text": [r.lab_range_text for r in results],
        "twitching": _json(context.twitching),
        "symptoms": jsontext.dumps(context.symptoms),
        "factors": jsontext.dumps(context.factors),
        "medications": jsontext.dumps(context.medications),
        "notes": context.notes,
        "actor": panel.actor,
        "role": panel.role,
        "audit_detail": jsontext.dumps({"accession": panel.accession}),
    }


def _insert_rows(conn: Connection, panel: NewPanel) -> None:
    """The same rows, statement by statement, in the caller's transaction (SQLite)."""
    revision, context, now = panel.revision, panel.revision.context, panel.created_at
    patient_id = conn.execute(
        insert(conn, PatientRow)
        .values(
            id=uuid.uuid4(),
            clinic_id=panel.clinic_id,
            external_id=panel.patient_id,
            sex=panel.patient_sex,
            birth_date=panel.patient_birth_date,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_update(
            index_elements=["clinic_id", "external_id"],
            set_=_newest_demographics(panel, now),
        )
        .returning(PatientRow.id)
    ).scalar_one()
    conn.execute(
        sa_insert(Panel).values(
            id=panel.id,
            clinic_id=panel.clinic_id,
            patient_id=patient_id,
            accession=panel.accession,
            status=PanelStatus.QUEUED,
            current_revision=1,
            collected_at=panel.collected_at,
            created_at=now,
            updated_at=now,
            enqueued_at=now,
            attempts=0,
        )
    )
    conn.execute(
        sa_insert(PanelRevision).values(
            id=revision.id,
            panel_id=panel.id,
            revision=revision.revision,
            content_hash=revision.content_hash,
            collected_at=revision.collected_at,
            sex=revision.sex,
            birth_date=revision.birth_date,
            age_years=revision.age_years,
            hemolyzed=revision.hemolyzed,
            specimen_type=revision.specimen_type,
            ruleset=revision.ruleset,
            collected_utc_offset=revision.collected_utc_offset,
            body=revision.body,
            created_at=now,
            created_by=revision.created_by,
        )
    )
    conn.execute(
        sa_insert(Result),
        [
            {
                "revision_id": revision.id,
                "position": r.position,
                "analyte": r.analyte,
                "loinc": r.loinc,
                "reported_value": r.reported_value,
                "reported_unit": r.reported_unit,
                "value": r.value,
                "unit": r.unit,
                "lab_low": r.lab_low,
                "lab_high": r.lab_high,
                "lab_range_text": r.lab_range_text,
            }
            for r in revision.results
        ],
    )
    conn.execute(
        sa_insert(PanelContext).values(
            revision_id=revision.id,
            twitching=context.twitching,
            symptoms=context.symptoms,
            factors=context.factors,
            medications=context.medications,
            notes=context.notes,
        )
    )
    conn.execute(
        sa_insert(AuditEvent).values(
            at=now,
            actor=panel.actor,
            role=panel.role,
            action="panel.create",
            clinic_id=panel.clinic_id,
            panel_id=panel.id,
            detail={"accession": panel.accession},
        )
    )


def _newest_demographics(panel: NewPanel, now: dt.datetime) -> dict[str, Any]:
    """The newest panel's demographics are the best known; `unknown` and no birth date
    change nothing."""
    values: dict[str, Any] = {"updated_at": now}
    if panel.patient_sex != "unknown":
        values["sex"] = panel.patient_sex
    if panel.patient_birth_date is not None:
        values["birth_date"] = panel.patient_birth_date
    return values
