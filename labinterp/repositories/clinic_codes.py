"""A clinic's code table: its own HL7 v2 result codes (OBX-3 that is not LOINC) -> analyte.
Never commits."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from labinterp.models import ClinicCode


def code_table(session: Session, clinic_id: uuid.UUID) -> dict[tuple[str, str], str]:
    """(system, code) -> analyte for every row of the clinic's table, in one query (a clinic's
    table is a few hundred rows at most)."""
    rows = session.execute(
        select(ClinicCode.system, ClinicCode.code, ClinicCode.analyte).where(
            ClinicCode.clinic_id == clinic_id
        )
    )
    return {(system, code): analyte for system, code, analyte in rows}


def rows_by_key(session: Session, clinic_id: uuid.UUID) -> dict[tuple[str, str], ClinicCode]:
    rows = session.scalars(select(ClinicCode).where(ClinicCode.clinic_id == clinic_id))
    return {(row.system, row.code): row for row in rows}
