"""Importing history: the CSV of API.md "Command line", streamed one panel at a time.

The file is read as a stream (plain or gzip, a path or standard input) and never held whole:
rows are grouped while consecutive rows share an accession, each group becomes the panel
document the API would have received, and that document meets the API's own schema
(``PanelIn``) and acceptance (``submit_panels``), so an imported panel is accepted or refused
with the API's rules and words. Rejected panels go to the error report, one line per problem;
good panels are stored ``queued`` and unpublished, a batch of them per transaction, and every
worker's relay publishes them up to 200 panel ids per Celery message
(labinterp.services.relay): the interpretation is chunked, not one message per panel.

FHIR NDJSON (one Bundle per line; told by a first non-blank line that starts with ``{``, or
by the caller) is read line by line the same way: each line is translated by the reader the
caller passes (labinterp.interop.fhir_in.ndjson_panels), and its errors name the line and the
FHIRPath of the field.

Rows of one accession must be together. A later reappearance of an accession is read as
another posting of it (remembering every accession seen would make memory grow with the
file): identical content counts as already present, anything else as conflicting, and the
report says which fields differ.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gzip
import io
import itertools
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import IO, Any, TextIO, cast

from marshmallow import ValidationError
from sqlalchemy import Engine

from labinterp.domain import Ruleset
from labinterp.schemas.messages import flatten_messages
from labinterp.schemas.panels import PanelIn
from labinterp.services.audit import Actor
from labinterp.services.errors import AccessionConflict, InvalidInput, in_sender_terms
from labinterp.services.panels import ClinicRef, submit_panels
from labinterp.services.panels import Source as RevisionSource

HEADER = (
    "accession",
    "patient_id",
    "sex",
    "birth_date",
    "collected_at",
    "analyte",
    "value",
    "unit",
    "low",
    "high",
)
ERROR_HEADER = ("line", "accession", "field", "reason")
_PANEL_FIELDS = ("patient_id", "sex", "birth_date", "collected_at")
_FIELD_PATHS = {
    "patient_id": "patient.id",
    "sex": "patient.sex",
    "birth_date": "patient.birth_date",
    "collected_at": "collected_at",
}

# The NHANES 2017-18 biochemistry file (../shared/fixtures/nhanes) is one row per person with a
# column per analyte and unit; it is read as one panel per person, in conventional units (so
# that unit conversion is exercised on every value). The file holds no collection date: every
# panel is dated in the middle of the survey cycle. Chloride and bicarbonate are not among the
# rulesets' analytes and are left out.
NHANES_COLUMNS = (
    ("calcium", "calcium_total_mg_dL", "mg/dL"),
    ("potassium", "potassium_mmol_L", "mmol/L"),
    ("sodium", "sodium_mmol_L", "mmol/L"),
    ("phosphate", "phosphorus_mg_dL", "mg/dL"),
    ("albumin", "albumin_g_dL", "g/dL"),
    ("creatinine", "creatinine_mg_dL", "mg/dL"),
)
NHANES_COLLECTED_AT = "2018-06-30T09:00:00Z"
_NHANES_KEYS = {"SEQN", "sex", "age_years"} | {column for _, column, _ in NHANES_COLUMNS}
_NHANES_SEX = {"F": "female", "M": "male"}
_SPACE = re.compile(r"\s+")


class ImportRefused(Exception):
    """The file as a whole cannot be read (not CSV of the expected header, not UTF-8)."""


@dataclass
class Candidate:
    """One panel read from the file: the document the API would have received, where each
    of its results came from, and what was wrong before any schema saw it."""

    accession: str
    line: int  # the panel's first line
    document: dict[str, Any]
    result_lines: list[int] = field(default_factory=list)
    problems: list[tuple[int, str, str]] = field(default_factory=list)  # line, field, reason
    # FHIR NDJSON: API path -> the sender's path (a FHIRPath), and what the line was
    paths: dict[str, str] = field(default_factory=dict)
    source: RevisionSource | None = None

    def line_of(self, path: str) -> int:
        """The line a field path (``results.2.unit``) came from."""
        parts = path.split(".")
        if len(parts) > 1 and parts[0] == "results" and parts[1].isdigit():
            index = int(parts[1])
            if index < len(self.result_lines):
                return self.result_lines[index]
        return self.line


@dataclass
class ImportSummary:
    rows: int = 0
    panels: int = 0
    imported: int = 0
    already_present: int = 0
    conflicting: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class Source:
    """An open input: its text, and how far through the underlying bytes reading has got
    (for a progress bar's ETA; ``size`` is None when unknown, as for standard input)."""

    text: TextIO
    size: int | None
    position: Callable[[], int]


@contextlib.contextmanager
def open_source(path: str, stdin: IO[bytes] | None = None) -> Iterator[Source]:
    """``path`` (``-``: standard input) as UTF-8 text, gunzipped when it starts with gzip's
    magic bytes whatever its name."""
    if path == "-":
        raw: IO[bytes] = stdin if stdin is not None else sys.stdin.buffer
        size = None
        owned = False
    else:
        raw = open(path, "rb")  # noqa: SIM115 - closed below, after the caller is done
        size = os.fstat(raw.fileno()).st_size
        owned = True
    try:
        buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(Any, raw))
        counted = raw if owned else buffered
        binary: Any = buffered  # a BufferedReader, or a GzipFile over it
        if buffered.peek(2)[:2] == b"\x1f\x8b":
            binary = gzip.GzipFile(fileobj=buffered, mode="rb")
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")

        def position() -> int:
            try:
                return counted.tell()
            except OSError:  # a pipe
                return 0

        yield Source(text, size, position)
    finally:
        if owned:
            raw.close()


# a reader of FHIR NDJSON: (line number, text) of each non-blank line in, panels out
NdjsonReader = Callable[[Iterable[tuple[int, str]]], Iterator[tuple[Candidate, int]]]


def read_panels(
    text: TextIO, *, ndjson: NdjsonReader | None = None, is_ndjson: bool = False
) -> Iterator[tuple[Candidate, int]]:
    """Each panel of the file with the number of rows it took: a generator, holding one
    panel's rows at a time. FHIR NDJSON (``is_ndjson``, or a first non-blank line starting
    with ``{``) goes to ``ndjson``, line by line."""
    skipped: list[str] = []
    first = text.readline()
    while first and not first.strip():
        skipped.append(first)
        first = text.readline()
    if is_ndjson or first.lstrip().startswith("{"):
        if ndjson is None:
            raise ImportRefused("a FHIR NDJSON file, and no FHIR reader was given")
        lines = itertools.chain([first], text) if first else iter(())
        yield from ndjson(
            (number, line)
            for number, line in enumerate(lines, start=len(skipped) + 1)
            if line.strip()
        )
        return
    reader = csv.reader(itertools.chain(skipped, [first], text))
    try:
        header = next(reader, None)
    except (UnicodeDecodeError, csv.Error, EOFError, OSError) as exc:
        raise ImportRefused(f"line 1: not a CSV file ({exc})") from exc
    if header is None:
        raise ImportRefused("the file is empty: a CSV with the header line was expected")
    names = [name.strip() for name in header]
    if names == list(HEADER):
        rows = _rows(reader, names)
        yield from _grouped(rows)
    elif set(names) >= _NHANES_KEYS:
        yield from ((_nhanes_panel(row, line), 1) for row, line in _rows(reader, names))
    else:
        raise ImportRefused(
            f'line 1: the header must be {",".join(HEADER)} (API.md "Command line"); '
            f"found {','.join(names)[:200]}"
        )


def _rows(reader: Any, names: list[str]) -> Iterator[tuple[dict[str, str], int]]:
    line = reader.line_num
    while True:
        try:
            record = next(reader, None)
        except (UnicodeDecodeError, csv.Error, EOFError, OSError) as exc:
            raise ImportRefused(
                f"line {line + 1}: cannot be read ({exc}); the panels before it were imported"
            ) from exc
        if record is None:
            return
        start, line = line + 1, reader.line_num
        if not record or record == [""]:
            continue  # a blank line
        row = dict(zip(names, (value.strip() for value in record), strict=False))
        if len(record) != len(names):
            row["_width"] = f"has {len(record)} fields where the header has {len(names)}"
        yield row, start


def _grouped(rows: Iterator[tuple[dict[str, str], int]]) -> Iterator[tuple[Candidate, int]]:
    current: Candidate | None = None
    first: dict[str, str] = {}
    count = 0
    for row, line in rows:
        accession = row.get("accession", "")
        if current is None or accession != current.accession:
            if current is not None:
                yield current, count
            current, first, count = _new_candidate(row, line), row, 0
        count += 1
        _add_result(current, first, row, line)
    if current is not None:
        yield current, count


def _new_candidate(row: dict[str, str], line: int) -> Candidate:
    patient: dict[str, Any] = {"id": row.get("patient_id", "")}
    if row.get("sex"):
        patient["sex"] = row["sex"]
    if row.get("birth_date"):
        patient["birth_date"] = row["birth_date"]
    document: dict[str, Any] = {
        "accession": row.get("accession", ""),
        "patient": patient,
        "collected_at": row.get("collected_at") or None,
        "results": [],
    }
    return Candidate(row.get("accession", ""), line, document)


def _add_result(panel: Candidate, first: dict[str, str], row: dict[str, str], line: int) -> None:
    if "_width" in row:
        panel.problems.append((line, "row", row["_width"]))
    for name in _PANEL_FIELDS:
        if row.get(name, "") != first.get(name, ""):
            panel.problems.append(
                (
                    line,
                    _FIELD_PATHS[name],
                    f"{name} {row.get(name, '')!r} differs from {first.get(name, '')!r} on line "
                    f"{panel.line}: the rows of one accession are one panel",
                )
            )
    result: dict[str, Any] = {
        "analyte": row.get("analyte") or None,
        "value": _number(row.get("value", "")),
        "unit": row.get("unit") or None,
    }
    low, high = _number(row.get("low", "")), _number(row.get("high", ""))
    if low is not None or high is not None:
        result["reference_range"] = {"low": low, "high": high}
    panel.document["results"].append(result)
    panel.result_lines.append(line)


def _number(text: str) -> Any:
    """A CSV cell as the JSON value the API would have received: nothing for an empty cell,
    a number for a number, the text itself otherwise (so the schema says "must be a number")."""
    if not text:
        return None
    try:
        return Decimal(_SPACE.sub("", text))
    except InvalidOperation:
        return text


def _nhanes_panel(row: dict[str, str], line: int) -> Candidate:
    seqn = row.get("SEQN", "")
    age = row.get("age_years", "")
    patient: dict[str, Any] = {
        "id": seqn,
        "sex": _NHANES_SEX.get(row.get("sex", ""), row.get("sex") or "unknown"),
        "age_years": int(age) if age.isdigit() else (age or None),
    }
    results = [
        {"analyte": analyte, "value": _number(row[column]), "unit": unit}
        for analyte, column, unit in NHANES_COLUMNS
        if row.get(column)
    ]
    accession = f"NHANES-{seqn}"
    document: dict[str, Any] = {
        "accession": accession,
        "patient": patient,
        "collected_at": NHANES_COLLECTED_AT,
        "results": results,
    }
    panel = Candidate(accession, line, document, [line] * len(results))
    if "_width" in row:
        panel.problems.append((line, "row", row["_width"]))
    return panel


class ErrorReport:
    """The rejected rows, as CSV (line, accession, field, reason), written as they are found."""

    def __init__(self, stream: TextIO | None):
        self._writer = None if stream is None else csv.writer(stream, lineterminator="\n")
        if self._writer is not None:
            self._writer.writerow(ERROR_HEADER)

    def add(self, line: int, accession: str, field_path: str, reason: str) -> None:
        if self._writer is not None:
            self._writer.writerow((line, accession, field_path, reason))


BATCH = 100  # panels per transaction: one commit each, and one query for their accessions


def import_panels(
    engine: Engine,
    actor: Actor,
    clinic: ClinicRef,
    panels: Iterator[tuple[Candidate, int]],
    ruleset: Ruleset,
    now: dt.datetime,
    report: ErrorReport,
    on_progress: Callable[[ImportSummary], None] | None = None,
    batch: int = BATCH,
) -> ImportSummary:
    """Submit each panel read from the file as the API would, ``batch`` panels per transaction
    (``submit_panels``): a refused panel never stops the others. Idempotent: the key is
    (clinic, accession) with the content hash, so importing a file again stores nothing and
    counts its panels as already present. Holds at most ``batch`` panels at a time."""
    summary = ImportSummary()
    pending: list[tuple[Candidate, dict[str, Any]]] = []
    for panel, rows in panels:
        summary.rows += rows
        summary.panels += 1
        document = _parsed(panel, report, summary)
        if document is not None:
            pending.append((panel, document))
        if len(pending) >= batch:
            _submit(engine, actor, clinic, pending, ruleset, now, report, summary)
            pending = []
            if on_progress is not None:
                on_progress(summary)
    _submit(engine, actor, clinic, pending, ruleset, now, report, summary)
    if on_progress is not None:
        on_progress(summary)
    return summary


def _parsed(panel: Candidate, report: ErrorReport, summary: ImportSummary) -> dict[str, Any] | None:
    """The panel through the API's schema, or None (counted rejected, reported) when refused."""
    errors = list(panel.problems)
    if not errors:
        try:
            return cast(dict[str, Any], PanelIn().load(panel.document))
        except ValidationError as exc:
            errors = _located(panel, flatten_messages(exc.messages))
    _reject(panel, errors, report, summary)
    return None


def _submit(
    engine: Engine,
    actor: Actor,
    clinic: ClinicRef,
    pending: list[tuple[Candidate, dict[str, Any]]],
    ruleset: Ruleset,
    now: dt.datetime,
    report: ErrorReport,
    summary: ImportSummary,
) -> None:
    if not pending:
        return
    documents = [document for _, document in pending]
    sources = [panel.source for panel, _ in pending]
    outcomes = submit_panels(
        engine,
        actor,
        clinic,
        documents,
        ruleset,
        now,
        sources=sources if any(s is not None for s in sources) else None,
    )
    for (panel, _), outcome in zip(pending, outcomes, strict=True):
        if isinstance(outcome, InvalidInput):
            _reject(panel, _located(panel, outcome.errors), report, summary)
        elif isinstance(outcome, AccessionConflict):
            summary.conflicting += 1
            report.add(panel.line, panel.accession, "accession", str(outcome))
        elif outcome.created:
            summary.imported += 1
        else:
            summary.already_present += 1


def _reject(
    panel: Candidate,
    errors: list[tuple[int, str, str]],
    report: ErrorReport,
    summary: ImportSummary,
) -> None:
    summary.rejected += 1
    for line, path, reason in errors:
        report.add(line, panel.accession, path, reason)


def _located(panel: Candidate, errors: dict[str, list[str]]) -> list[tuple[int, str, str]]:
    """Each error with its line and its field in the sender's terms (a FHIRPath for NDJSON)."""
    located = []
    for path, texts in errors.items():
        where = next(iter(in_sender_terms({path: texts}, panel.paths)))
        located += [(panel.line_of(path), where, reason) for reason in texts]
    return sorted(located)
