"""A clinic's code table: the local result codes its lab sends in HL7 v2 OBX-3 (rather than
LOINC), each mapped to one of our analytes. Imported from CSV (``labinterp codes import``),
read by HL7 v2 intake (``lookup``)."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from labinterp.domain import Ruleset
from labinterp.models import ClinicCode
from labinterp.repositories import clinic_codes as repo
from labinterp.services import audit
from labinterp.services.accounts import find_clinic
from labinterp.services.audit import Actor
from labinterp.services.errors import InvalidInput

HEADER = ("system", "code", "analyte")
MAX_ROWS = 10_000


def normal_system(system: str) -> str:
    """Coding systems match whatever their case and surrounding blanks (``l`` is ``L``)."""
    return system.strip().upper()


def lookup(table: dict[tuple[str, str], str]) -> Callable[[str, str], str | None]:
    """The analyte for (OBX-3.3 system, OBX-3.1 code): the row for that system, else a row
    with an empty system (the code in any system), else None."""

    def analyte(system: str, code: str) -> str | None:
        code = code.strip()
        return table.get((normal_system(system), code)) or table.get(("", code))

    return analyte


@dataclass(frozen=True)
class CodesImported:
    clinic: str
    added: int
    changed: int
    unchanged: int


def read_rows(lines: Iterable[str]) -> list[tuple[int, str, str, str]]:
    """(line number, system, code, analyte) of a CSV with the header ``system,code,analyte``;
    InvalidInput naming every bad line."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or tuple(h.strip().lower() for h in header) != HEADER:
        raise InvalidInput(
            {"line 1": [f"the header must be {','.join(HEADER)}; found {','.join(header or [])}"]}
        )
    rows: list[tuple[int, str, str, str]] = []
    errors: dict[str, list[str]] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 3:
            errors[f"line {line}"] = [f"expected 3 columns (system,code,analyte), got {len(row)}"]
            continue
        system, code, analyte = (cell.strip() for cell in row)
        if not code:
            errors[f"line {line}"] = ["code is empty"]
        elif len(system) > 40 or len(code) > 60:
            errors[f"line {line}"] = ["system is at most 40 characters, code at most 60"]
        else:
            rows.append((line, normal_system(system), code, analyte))
        if len(rows) > MAX_ROWS:
            raise InvalidInput({f"line {line}": [f"more than {MAX_ROWS} codes"]})
    if errors:
        raise InvalidInput(errors)
    return rows


def import_codes(
    session: Session,
    actor: Actor,
    clinic_name: str,
    rows: list[tuple[int, str, str, str]],
    ruleset: Ruleset,
) -> CodesImported:
    """Add or change the clinic's codes (a code already there takes the new analyte; codes not
    in the file stay). One transaction, audited (``clinic_codes.import``); the whole file is
    refused, naming each line, when any analyte is unknown or a code is listed twice.
    Importing the same file again changes nothing."""
    clinic = find_clinic(session, clinic_name)
    errors: dict[str, list[str]] = {}
    seen: dict[tuple[str, str], int] = {}
    for line, system, code, analyte in rows:
        key = ruleset.alias_index.get(analyte.casefold())
        if key is None:
            errors.setdefault(f"line {line}", []).append(
                f"unknown analyte {analyte!r}; known: {', '.join(ruleset.analytes)}"
            )
        if (system, code) in seen:
            errors.setdefault(f"line {line}", []).append(
                f"code {code!r} of system {system!r} is also on line {seen[(system, code)]}"
            )
        seen[(system, code)] = line
    if errors:
        raise InvalidInput(errors)
    existing = repo.rows_by_key(session, clinic.id)
    added = changed = unchanged = 0
    for _, system, code, analyte in rows:
        key = ruleset.alias_index[analyte.casefold()]
        row = existing.get((system, code))
        if row is None:
            session.add(ClinicCode(clinic_id=clinic.id, system=system, code=code, analyte=key))
            added += 1
        elif row.analyte != key:
            row.analyte = key
            changed += 1
        else:
            unchanged += 1
    audit.record(
        session,
        actor,
        "clinic_codes.import",
        clinic_id=clinic.id,
        detail={"added": added, "changed": changed, "unchanged": unchanged},
    )
    session.commit()
    return CodesImported(clinic.name, added, changed, unchanged)


def clinic_lookup(session: Session, clinic_id: uuid.UUID) -> Callable[[str, str], str | None]:
    return lookup(repo.code_table(session, clinic_id))
