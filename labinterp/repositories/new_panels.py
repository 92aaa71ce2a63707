"""Writing a new accession: its patient, the panel, revision 1 with its results and context,
and the audit event, made durable in one round trip.

The hottest write of the service (every POST), so it bypasses the ORM's unit of work:

* PostgreSQL: one statement of data-modifying CTEs, run in autocommit: the statement is its
  own transaction, one round trip and one commit, durable when it returns. Its text never
  changes (the whole panel is one JSON parameter), so psycopg prepares it once per
  connection.
* SQLite: the same rows, statement by statement, in one transaction (no network to save).

The API does not talk to the broker: the panel is stored `queued` with no ``enqueued_at``, and
a relay in the workers publishes it (``labinterp.relay``).

The panel's (clinic, accession) is unique: a second panel with the same accession raises
``IntegrityError`` and nothing at all is written (the whole statement, or transaction, rolls
back, the patient's update included).
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import threading
import uuid
import weakref
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Dialect, Engine, Table

from labinterp import jsontext
from labinterp.db import AutocommitWriter, driver_error, execute_in_autocommit, write_transaction
from labinterp.ids import new_id
from labinterp.models import AuditEvent, Panel, PanelContext, PanelRevision, PanelStatus, Result
from labinterp.models import Patient as PatientRow


# What a new panel is written from: named tuples (immutable, and several times cheaper to make
# than frozen dataclasses: a POST makes one of each, and one result per analyte)
class NewResult(NamedTuple):
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
    sender_flag: str | None = None  # the sender's own flag, verbatim


class NewContext(NamedTuple):
    twitching: dict[str, Any] | None
    symptoms: list[str]
    factors: list[str]
    medications: list[str]
    notes: str | None


class NewRevision(NamedTuple):
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
    # what it was received as (models.SourceFormat), the document as received (FHIR, HL7 v2)
    # and what it held that was kept but not judged
    source_format: str | None = None
    source_document: str | None = None
    not_interpreted: list[dict[str, str]] | None = None


class NewPanel(NamedTuple):
    id: uuid.UUID
    clinic_id: uuid.UUID
    accession: str
    patient_id: str  # the clinic's own id of the patient
    patient_sex: str
    patient_birth_date: dt.date | None
    collected_at: dt.datetime
    created_at: dt.datetime
    revision: NewRevision
    actor: str  # for the audit trail: who, and from where with which token
    role: str
    address: str | None = None
    token_id: uuid.UUID | None = None


def store_new_panel(engine: Engine, panel: NewPanel) -> None:
    """Write ``panel`` durably: on PostgreSQL as one statement in autocommit (the statement
    is the transaction), on SQLite as several in one transaction. The one repository function
    that commits: its write is a whole unit of work."""
    if engine.dialect.name == "postgresql":
        execute_in_autocommit(engine, _POSTGRES_INSERT, _postgres_parameters(panel))
    else:
        with write_transaction(engine) as conn:
            _insert_rows(conn, panel)


def store_new_panel_grouped(engine: Engine, panel: NewPanel) -> None:
    """:func:`store_new_panel`, committed together with the new panels other threads of this
    process are storing at the same moment (group commit, PostgreSQL): one statement, one
    commit and one WAL flush for all of them. Returns only once this panel is committed, as
    :func:`store_new_panel` does; raises what :func:`store_new_panel` would raise for it
    alone. Elsewhere (SQLite) the same as :func:`store_new_panel`."""
    if engine.dialect.name != "postgresql":
        store_new_panel(engine, panel)
        return
    _group_commit(engine).store(panel)


def _group_commit(engine: Engine) -> GroupCommit:
    group = _GROUPS.get(engine)
    if group is None:
        with _GROUPS_LOCK:
            group = _GROUPS.get(engine)
            if group is None:
                group = _GROUPS[engine] = GroupCommit(engine)
    return group


class _Waiting:
    """A panel waiting in a :class:`GroupCommit`, and what became of it."""

    __slots__ = ("batch_size", "error", "outcome", "panel", "ready")

    def __init__(self, panel: NewPanel) -> None:
        self.panel = panel
        # held until the panel's outcome is set: a plain lock is cheaper to make than an Event
        # (its Condition), and only one thread ever waits on it
        self.ready = threading.Lock()
        self.ready.acquire()
        self.outcome = ""  # "stored", "failed" (error, batch_size set) or "lead"
        self.error: BaseException | None = None
        self.batch_size = 0


class GroupCommit:
    """Group commit of new panels for the threads of one process (the API's gthread workers).

    A thread that brings a panel while no batch is being written becomes the leader: it
    writes every panel waiting at that moment (up to ``max_batch``) in one statement, in
    autocommit, then answers each waiting thread. Panels that arrive meanwhile wait for the
    next batch, whose leader is the first of them (woken by the previous leader), so each
    request is answered only after its own panel is committed, and a lone request writes its
    panel itself, with no hand-off. Under load this turns N commits, N WAL flushes and N
    round trips into one.

    A batch never holds two panels of one patient, nor two with one accession, of a clinic
    (one statement cannot insert and update a row twice): the later one waits for the next
    batch. If a batch fails (an accession stored already, a lost connection, anything), its
    panels are written one by one with :func:`store_new_panel`, each by its own thread, so a
    bad panel never fails others and each gets the error it alone would get.
    """

    def __init__(self, engine: Engine, max_batch: int = 64) -> None:
        self.engine = engine
        self.max_batch = max_batch
        # the leader's own connection (one leader at a time): no pool checkout per batch
        self._writer = AutocommitWriter(engine)
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._leading = False

    def store(self, panel: NewPanel) -> None:
        me = _Waiting(panel)
        with self._lock:
            self._waiting.append(me)
            lead = not self._leading
            if lead:
                self._leading = True
        if not lead:
            me.ready.acquire()
            if me.outcome == "lead":  # the previous leader passed the lead on
                lead = True
        if lead:
            self._lead(me)
        if me.outcome == "failed":
            if me.batch_size == 1 and me.error is not None:
                raise me.error  # what it alone gets: it was alone
            store_new_panel(self.engine, panel)  # the batch failed: this one on its own

    def _lead(self, me: _Waiting) -> None:
        """Write batches until ``me`` is written; then hand the lead to the next waiting."""
        try:
            while me.outcome not in ("stored", "failed"):
                with self._lock:
                    batch = self._take()
                try:
                    self._write(batch)
                finally:
                    for waiting in batch:
                        if waiting is not me:
                            waiting.ready.release()
        finally:
            with self._lock:
                if self._waiting:
                    successor = self._waiting[0]
                    successor.outcome = "lead"
                    successor.ready.release()
                else:
                    self._leading = False

    def _take(self) -> list[_Waiting]:
        """The waiting panels that can share one statement, in order of arrival (under the
        lock)."""
        batch: list[_Waiting] = []
        later: list[_Waiting] = []
        patients: set[tuple[uuid.UUID, str]] = set()
        accessions: set[tuple[uuid.UUID, str]] = set()
        for waiting in self._waiting:
            panel = waiting.panel
            patient = (panel.clinic_id, panel.patient_id)
            accession = (panel.clinic_id, panel.accession)
            if len(batch) >= self.max_batch or patient in patients or accession in accessions:
                later.append(waiting)
                continue
            patients.add(patient)
            accessions.add(accession)
            batch.append(waiting)
        self._waiting = later
        return batch

    def _write(self, batch: list[_Waiting]) -> None:
        try:
            self._writer.execute(_POSTGRES_INSERT, _postgres_batch_parameters(batch))
        except BaseException as exc:  # each panel then goes on its own
            for waiting in batch:
                waiting.outcome, waiting.error, waiting.batch_size = "failed", exc, len(batch)
            _BATCHES.append((len(batch), False))
            if not isinstance(exc, Exception):
                raise
        else:
            for waiting in batch:
                waiting.outcome = "stored"
            _BATCHES.append((len(batch), True))


_GROUPS: weakref.WeakKeyDictionary[Engine, GroupCommit] = weakref.WeakKeyDictionary()
_GROUPS_LOCK = threading.Lock()
# this process's last batches: (panels, written); a batch not written went panel by panel
_BATCHES: collections.deque[tuple[int, bool]] = collections.deque(maxlen=10_000)


def recent_batches() -> list[tuple[int, bool]]:
    """This process's last group-commit batches, oldest first: (panels, whether the batch was
    written; if not, each of its panels was written on its own). For tests and benchmarks."""
    return list(_BATCHES)


def store_new_panels(engine: Engine, panels: Sequence[NewPanel]) -> None:
    """Write several new panels in one transaction (bulk import: one commit, not one per
    panel). All or nothing: an accession already stored raises ``IntegrityError`` and none of
    them is written, so the caller may submit them one by one instead."""
    with write_transaction(engine) as conn:
        if engine.dialect.name != "postgresql":
            for panel in panels:
                _insert_rows(conn, panel)
            return
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            for panel in panels:
                cursor.execute(_POSTGRES_INSERT, _postgres_parameters(panel))
        except conn.dialect.loaded_dbapi.Error as exc:
            raise driver_error(conn.dialect, _POSTGRES_INSERT, exc) from None
        finally:
            cursor.close()


# Everything goes in as one JSON parameter: psycopg adapts one string instead of forty values
# (ten of them arrays), and PostgreSQL reads the results with jsonb_to_recordset. Numbers stay
# exact (jsonb keeps them as numeric), times carry their offsets into timestamptz.
#
# One statement for one panel and for several (GroupCommit): the parameter is a JSON array of
# panel documents. Patients are upserted in (clinic, id) order, so two batches that share
# patients lock them in the same order (no deadlock); a statement never holds one patient
# twice (GroupCommit._take; store_new_panels sends one panel per statement).
_POSTGRES_INSERT = """
WITH doc AS (
    SELECT d.j FROM jsonb_array_elements(%(doc)s::jsonb) AS d(j)
), patient AS (
    INSERT INTO patients (id, clinic_id, external_id, sex, birth_date, created_at, updated_at)
    SELECT (j->>'patient_row_id')::uuid, (j->>'clinic_id')::uuid, j->>'patient_id', j->>'sex',
           (j->>'birth_date')::date, (j->>'now')::timestamptz, (j->>'now')::timestamptz
    FROM doc
    ORDER BY j->>'clinic_id', j->>'patient_id'
    ON CONFLICT (clinic_id, external_id) DO UPDATE SET
        sex = CASE WHEN EXCLUDED.sex <> 'unknown' THEN EXCLUDED.sex ELSE patients.sex END,
        birth_date = COALESCE(EXCLUDED.birth_date, patients.birth_date),
        updated_at = EXCLUDED.updated_at
    RETURNING id, clinic_id, external_id
), panel AS (
    INSERT INTO panels (id, clinic_id, patient_id, accession, status, current_revision,
                        collected_at, created_at, updated_at, enqueued_at, attempts)
    SELECT (j->>'panel_id')::uuid, patient.clinic_id, patient.id, j->>'accession',
           j->>'status', 1, (j->>'collected_at')::timestamptz, (j->>'now')::timestamptz,
           (j->>'now')::timestamptz, NULL, 0
    FROM doc JOIN patient ON patient.clinic_id = (j->>'clinic_id')::uuid
                         AND patient.external_id = j->>'patient_id'
    RETURNING id
), revision AS (
    INSERT INTO panel_revisions (id, panel_id, revision, content_hash, collected_at, sex,
                                 birth_date, age_years, hemolyzed, specimen_type, ruleset,
                                 collected_utc_offset, body, created_at, created_by,
                                 source_format, source_document, not_interpreted)
    SELECT (j->>'revision_id')::uuid, panel.id, 1, j->>'content_hash',
           (j->>'collected_at')::timestamptz, j->>'sex', (j->>'birth_date')::date,
           (j->>'age_years')::int, (j->>'hemolyzed')::boolean, j->>'specimen_type',
           j->>'ruleset', (j->>'collected_utc_offset')::int, j->'body',
           (j->>'now')::timestamptz, j->>'created_by', j->>'source_format',
           j->>'source_document', NULLIF(j->'not_interpreted', 'null'::jsonb)
    FROM doc JOIN panel ON panel.id = (j->>'panel_id')::uuid
    RETURNING id
), results AS (
    INSERT INTO results (revision_id, position, analyte, loinc, reported_value, reported_unit,
                         value, unit, lab_low, lab_high, lab_range_text, sender_flag)
    SELECT revision.id, r.position, r.analyte, r.loinc, r.reported_value, r.reported_unit,
           r.value, r.unit, r.lab_low, r.lab_high, r.lab_range_text, r.sender_flag
    FROM doc JOIN revision ON revision.id = (doc.j->>'revision_id')::uuid,
         jsonb_to_recordset(doc.j->'results') AS r(
        position int, analyte text, loinc text, reported_value text, reported_unit text,
        value numeric, unit text, lab_low text, lab_high text, lab_range_text text,
        sender_flag text)
), context AS (
    INSERT INTO panel_contexts (revision_id, twitching, symptoms, factors, medications, notes)
    SELECT revision.id, NULLIF(j->'twitching', 'null'::jsonb), j->'symptoms', j->'factors',
           j->'medications', j->>'notes'
    FROM doc JOIN revision ON revision.id = (j->>'revision_id')::uuid
), audit AS (
    INSERT INTO audit_events (at, actor, role, action, clinic_id, panel_id, detail, address,
                              token_id)
    SELECT (j->>'now')::timestamptz, j->>'actor', j->>'role', 'panel.create',
           (j->>'clinic_id')::uuid, panel.id, jsonb_build_object('accession', j->>'accession'),
           j->>'address', (j->>'token_id')::uuid
    FROM doc JOIN panel ON panel.id = (j->>'panel_id')::uuid
)
SELECT id FROM panel
"""


def _postgres_parameters(panel: NewPanel) -> dict[str, str]:
    return {"doc": jsontext.dumps([_postgres_document(panel)])}


def _postgres_batch_parameters(batch: Sequence[_Waiting]) -> dict[str, str]:
    return {"doc": jsontext.dumps([_postgres_document(w.panel) for w in batch])}


def _postgres_document(panel: NewPanel) -> dict[str, Any]:
    revision, context = panel.revision, panel.revision.context
    return {
        "patient_row_id": new_id(),
        "clinic_id": panel.clinic_id,
        "patient_id": panel.patient_id,
        "sex": panel.patient_sex,
        "birth_date": panel.patient_birth_date,
        "now": _instant(panel.created_at),
        "panel_id": panel.id,
        "accession": panel.accession,
        "status": PanelStatus.QUEUED.value,
        "collected_at": _instant(panel.collected_at),
        "revision_id": revision.id,
        "content_hash": revision.content_hash,
        "age_years": revision.age_years,
        "hemolyzed": revision.hemolyzed,
        "specimen_type": revision.specimen_type,
        "ruleset": revision.ruleset,
        "collected_utc_offset": revision.collected_utc_offset,
        "body": revision.body,
        "created_by": revision.created_by,
        "source_format": revision.source_format,
        "source_document": revision.source_document,
        "not_interpreted": revision.not_interpreted,
        "results": [r._asdict() for r in revision.results],
        "twitching": context.twitching,
        "symptoms": context.symptoms,
        "factors": context.factors,
        "medications": context.medications,
        "notes": context.notes,
        "actor": panel.actor,
        "role": panel.role,
        "address": panel.address,
        "token_id": panel.token_id,
    }


def _instant(moment: dt.datetime) -> str:
    """ISO 8601 with its offset, to the microsecond (timestamptz keeps the instant)."""
    return moment.isoformat()


class _RawInsert:
    """An INSERT of one table run on the driver's own cursor: its text written once, each
    value converted by its column's own SQLAlchemy type (UUIDs, UTC times, JSON, decimals are
    stored exactly as the ORM stores them), without SQLAlchemy's per-statement machinery."""

    def __init__(self, table: Table, dialect: Dialect, suffix: str = "") -> None:
        self.columns = [
            c.name
            for c in table.columns
            if not (c.primary_key and c.autoincrement is True and c.type.python_type is int)
        ]
        self.sql = (
            f"INSERT INTO {table.name} ({', '.join(self.columns)}) "  # noqa: S608 - schema names
            f"VALUES ({', '.join('?' for _ in self.columns)}){suffix}"
        )
        self.convert = [table.c[c].type.bind_processor(dialect) for c in self.columns]

    def values(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            row.get(c) if f is None else f(row.get(c))
            for c, f in zip(self.columns, self.convert, strict=True)
        )


@functools.cache
def _sqlite_statements(dialect: Dialect) -> dict[str, _RawInsert]:
    def table(model: Any) -> Table:
        return cast(Table, model.__table__)

    return {
        "patient": _RawInsert(
            table(PatientRow),
            dialect,
            # the newest panel's demographics are the best known; `unknown` and no birth date
            # change nothing
            " ON CONFLICT (clinic_id, external_id) DO UPDATE SET"
            " sex = CASE WHEN excluded.sex <> 'unknown' THEN excluded.sex ELSE patients.sex END,"
            " birth_date = COALESCE(excluded.birth_date, patients.birth_date),"
            " updated_at = excluded.updated_at RETURNING id",
        ),
        "panel": _RawInsert(table(Panel), dialect),
        "revision": _RawInsert(table(PanelRevision), dialect),
        "result": _RawInsert(table(Result), dialect),
        "context": _RawInsert(table(PanelContext), dialect),
        "audit": _RawInsert(table(AuditEvent), dialect),
    }


def _insert_rows(conn: Connection, panel: NewPanel) -> None:
    """The same rows, statement by statement, on the driver's cursor, in the caller's
    transaction (SQLite: no network to save, but SQLAlchemy's work per statement would cost
    more than SQLite's)."""
    revision, context, now = panel.revision, panel.revision.context, panel.created_at
    insert = _sqlite_statements(conn.dialect)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    patient = insert["patient"]
    statement = patient.sql
    try:
        cursor.execute(
            statement,
            patient.values(
                {
                    "id": new_id(),
                    "clinic_id": panel.clinic_id,
                    "external_id": panel.patient_id,
                    "sex": panel.patient_sex,
                    "birth_date": panel.patient_birth_date,
                    "created_at": now,
                    "updated_at": now,
                }
            ),
        )
        (patient_id,) = cursor.fetchone()
        rows: list[tuple[str, dict[str, Any]]] = [
            (
                "panel",
                {
                    "id": panel.id,
                    "clinic_id": panel.clinic_id,
                    "accession": panel.accession,
                    "status": PanelStatus.QUEUED.value,
                    "current_revision": 1,
                    "collected_at": panel.collected_at,
                    "created_at": now,
                    "updated_at": now,
                    "enqueued_at": None,  # a worker's relay publishes it
                    "attempts": 0,
                },
            ),
            (
                "revision",
                {
                    "id": revision.id,
                    "panel_id": panel.id,
                    "revision": revision.revision,
                    "content_hash": revision.content_hash,
                    "collected_at": revision.collected_at,
                    "sex": revision.sex,
                    "birth_date": revision.birth_date,
                    "age_years": revision.age_years,
                    "hemolyzed": revision.hemolyzed,
                    "specimen_type": revision.specimen_type,
                    "ruleset": revision.ruleset,
                    "collected_utc_offset": revision.collected_utc_offset,
                    "body": revision.body,
                    "created_at": now,
                    "created_by": revision.created_by,
                    "source_format": revision.source_format,
                    "source_document": revision.source_document,
                    "not_interpreted": revision.not_interpreted,
                },
            ),
            *(("result", {"revision_id": revision.id, **r._asdict()}) for r in revision.results),
            (
                "context",
                {
                    "revision_id": revision.id,
                    "twitching": context.twitching,
                    "symptoms": context.symptoms,
                    "factors": context.factors,
                    "medications": context.medications,
                    "notes": context.notes,
                },
            ),
            (
                "audit",
                {
                    "at": now,
                    "actor": panel.actor,
                    "role": panel.role,
                    "action": "panel.create",
                    "clinic_id": panel.clinic_id,
                    "panel_id": panel.id,
                    "detail": {"accession": panel.accession},
                    "address": panel.address,
                    "token_id": panel.token_id,
                },
            ),
        ]
        rows[0][1]["patient_id"] = _stored_id(patient_id)
        for name, row in rows:
            statement = insert[name].sql
            cursor.execute(statement, insert[name].values(row))
    except conn.dialect.loaded_dbapi.Error as exc:  # e.g. the accession exists: IntegrityError
        raise driver_error(conn.dialect, statement, exc) from None
    finally:
        cursor.close()


def _stored_id(value: Any) -> uuid.UUID:
    """The patient's id as SQLite hands it back (32 hex digits), as a UUID to store again."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(hex=str(value))
