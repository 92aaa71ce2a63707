"""`labinterp import`: history in bulk, each panel accepted or refused whole with the API's own
rules and words, idempotent, streamed (memory does not grow with the file)."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import os
import subprocess
import sys
import types
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from labinterp.models import Panel, PanelStatus
from labinterp.runtime import Runtime
from labinterp.services.accounts import find_clinic
from labinterp.services.audit import Actor
from labinterp.services.dispatch import Dispatcher
from labinterp.services.importing import (
    HEADER,
    ErrorReport,
    ImportSummary,
    import_panels,
    open_source,
    read_panels,
)
from labinterp.services.interpretation import interpret_panels
from labinterp.services.panels import ClinicRef
from labinterp.services.relay import relay_unpublished
from labinterp.services.rulesets import cached_active_ruleset
from tests.api.conftest import clinic_app
from tests.integration.services import fresh_postgres_database
from tests.integration.worker_process import REPO

SHARED = REPO.parent / "shared"
NHANES = sorted((SHARED / "fixtures" / "nhanes").glob("*.csv"))
OPERATOR = Actor(name="cli:test", role="admin")


def rows_of(accession: str, patient: str = "P1", **results: str) -> list[list[str]]:
    """One CSV row per ``analyte="value unit"`` (value or unit may be empty)."""
    out = []
    for analyte, written in results.items():
        value, _, unit = written.partition(" ")
        panel = [accession, patient, "female", "1970-05-01", "2025-03-01T08:30:00Z"]
        out.append([*panel, analyte, value, unit, "", ""])
    return out


def csv_text(*groups: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for group in groups:
        writer.writerows(group)
    return buffer.getvalue()


GOOD = (
    rows_of("A-1", potassium="4.1 mmol/L", sodium="140 mmol/L", magnesium="0.8 mmol/L"),
    rows_of("A-2", "P2", calcium="9.2 mg/dL", albumin="4.1 g/dL"),
    rows_of("A-3", "P3", potassium="2.6 mmol/L"),
)


def run(
    tmp_path: Path, *args: str, stdin: bytes | None = None, **env: str
) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    return subprocess.run(
        [sys.executable, "-m", "labinterp", *args],
        cwd=REPO,
        env={**base, "LABINTERP_INSTANCE": str(tmp_path / "instance"), **env},
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def import_text(runtime: Runtime, text: str, clinic: str = "c") -> tuple[ImportSummary, str]:
    """The service on ``text`` for clinic ``clinic``: (summary, the error report's CSV)."""
    with runtime.session_factory() as session:
        found = find_clinic(session, clinic)
        ref = ClinicRef(found.id, found.name)
    ruleset = cached_active_ruleset(
        runtime.session_factory,
        runtime.active_ruleset,
        runtime.rulesets,
        runtime.settings.default_ruleset,
    )
    errors = io.StringIO()
    with open_source("-", stdin=io.BytesIO(text.encode())) as source:
        summary = import_panels(
            runtime.engine,
            OPERATOR,
            ref,
            read_panels(source.text),
            ruleset,
            dt.datetime.now(dt.UTC),
            ErrorReport(errors),
        )
    return summary, errors.getvalue()


def report_rows(report: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(report)))


def panel_count(runtime: Runtime) -> int:
    with runtime.session_factory() as session:
        return session.scalar(select(func.count()).select_from(Panel)) or 0


@pytest.fixture
def app(tmp_path):
    return clinic_app({"LABINTERP_INSTANCE": str(tmp_path), "LABINTERP_RATE_LIMIT": "0"}, "c")


def test_a_small_csv_imports_its_panels_queued_for_the_relay_and_a_second_import_changes_nothing(
    app,
):
    """Imported panels are stored `queued` and unpublished (enqueued_at NULL): the workers'
    relay publishes them in chunks, as it does posted panels. Again: all already present."""
    runtime, _, _ = app
    summary, report = import_text(runtime, csv_text(*GOOD))
    assert (summary.rows, summary.panels, summary.imported) == (6, 3, 3)
    assert report_rows(report) == []
    with runtime.session_factory() as session:
        panels = session.scalars(select(Panel)).all()
        assert sorted(p.accession for p in panels) == ["A-1", "A-2", "A-3"]
        assert {p.status for p in panels} == {PanelStatus.QUEUED}
        assert {p.enqueued_at for p in panels} == {None}
        ids = [p.id for p in panels]

    again, report = import_text(runtime, csv_text(*GOOD))
    assert (again.imported, again.already_present, again.conflicting, again.rejected) == (
        0,
        3,
        0,
        0,
    )
    assert panel_count(runtime) == 3

    outcome = interpret_panels(runtime.engine, runtime.rulesets, ids, max_attempts=5)
    assert sorted(outcome.interpreted) == sorted(ids), outcome.summary()


def test_a_bad_row_refuses_its_panel_with_the_apis_own_message_and_the_good_ones_go_in(app):
    """Unknown unit, missing value, bad date: each panel refused whole, the report naming the
    row's line, the accession, the field path and the very reason the API's 422 gives."""
    runtime, client, token = app
    bad_unit = rows_of("B-1", potassium="4.1 mmol/L", sodium="140 furlongs")
    no_value = rows_of("B-2", potassium=" mmol/L")
    bad_date = [
        [*row[:4], "2025-02-30T08:00:00Z", *row[5:]] for row in rows_of("B-3", sodium="140 mmol/L")
    ]
    text = csv_text(GOOD[0], bad_unit, no_value, GOOD[1], bad_date, GOOD[2])
    summary, report = import_text(runtime, text)
    assert (summary.imported, summary.rejected) == (3, 3)
    rows = report_rows(report)
    by_accession = {row["accession"]: row for row in rows}
    assert set(by_accession) == {"B-1", "B-2", "B-3"}
    # line numbers count the header: A-1 takes lines 2-4, B-1 lines 5-6
    assert (by_accession["B-1"]["line"], by_accession["B-1"]["field"]) == ("6", "results.1.unit")
    assert (by_accession["B-2"]["line"], by_accession["B-2"]["field"]) == ("7", "results.0.value")
    assert by_accession["B-3"]["field"] == "collected_at"

    # the API says the same of the same panels
    headers = {"Authorization": f"Bearer {token}"}
    for accession, value, path in (
        ("B-1", {"analyte": "sodium", "value": 140, "unit": "furlongs"}, "results.1.unit"),
        ("B-2", {"analyte": "potassium", "unit": "mmol/L"}, "results.0.value"),
    ):
        results = (
            [value]
            if accession == "B-2"
            else [
                {"analyte": "potassium", "value": 4.1, "unit": "mmol/L"},
                value,
            ]
        )
        document = {
            "accession": accession,
            "patient": {"id": "P1", "sex": "female", "birth_date": "1970-05-01"},
            "collected_at": "2025-03-01T08:30:00Z",
            "results": results,
        }
        answer = client.post("/api/v1/panels", json=document, headers=headers)
        assert answer.status_code == 422, answer.get_json()
        assert by_accession[accession]["reason"] in answer.get_json()["errors"][path]


def test_the_same_accession_with_other_values_is_counted_conflicting(app):
    runtime, _, _ = app
    import_text(runtime, csv_text(*GOOD))
    changed = rows_of("A-3", "P3", potassium="2.7 mmol/L")
    summary, report = import_text(runtime, csv_text(GOOD[0], changed))
    assert (summary.already_present, summary.conflicting, summary.imported) == (1, 1, 0)
    (row,) = report_rows(report)
    assert (row["line"], row["accession"], row["field"]) == ("5", "A-3", "accession")
    assert "results[potassium].value" in row["reason"]


def test_rows_of_an_accession_that_are_apart_make_a_second_posting_which_conflicts(app):
    """Documented choice: memory stays flat, so a reappearing accession is read as another
    posting of it, and conflicts with the part imported first (the report says which)."""
    runtime, _, _ = app
    split = csv_text(GOOD[0][:2], GOOD[1], GOOD[0][2:])
    summary, report = import_text(runtime, split)
    assert (summary.panels, summary.imported, summary.conflicting) == (3, 2, 1)
    assert report_rows(report)[0]["accession"] == "A-1"


def test_rows_of_one_accession_that_disagree_on_the_patient_refuse_the_panel(app):
    runtime, _, _ = app
    mixed = rows_of("M-1", potassium="4.1 mmol/L") + rows_of("M-1", "P9", sodium="140 mmol/L")
    summary, report = import_text(runtime, csv_text(mixed, GOOD[2]))
    assert (summary.rejected, summary.imported) == (1, 1)
    (row,) = report_rows(report)
    assert (row["line"], row["field"]) == ("3", "patient.id")
    assert "line 2" in row["reason"]


def test_the_command_reads_gzip_and_standard_input_and_writes_the_error_report(tmp_path):
    assert run(tmp_path, "clinics", "create", "north").returncode == 0
    bad = rows_of("B-1", potassium="4.1 bananas")
    plain = csv_text(*GOOD, bad).encode()
    zipped = tmp_path / "history.csv.anything"  # gzip is recognised by its bytes, not its name
    zipped.write_bytes(gzip.compress(plain))
    errors = tmp_path / "errors.csv"
    done = run(tmp_path, "import", str(zipped), "--clinic", "north", "--errors", str(errors))
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "imported 3, already present 0, conflicting 0, rejected 1" in out
    assert "panels/s" in done.stderr.decode()  # the plain progress line (no terminal here)
    (row,) = report_rows(errors.read_text())
    assert (row["line"], row["accession"], row["field"]) == ("8", "B-1", "results.0.unit")

    again = run(tmp_path, "import", "-", "--clinic", "north", stdin=plain)
    assert again.returncode == 0, again.stderr
    assert "imported 0, already present 3, conflicting 0, rejected 1" in again.stdout.decode()


def test_a_file_that_is_not_the_csv_of_api_md_is_refused_in_one_line(tmp_path):
    assert run(tmp_path, "clinics", "create", "north").returncode == 0
    odd = tmp_path / "odd.csv"
    odd.write_text("id,name\n1,x\n")
    done = run(tmp_path, "import", str(odd), "--clinic", "north")
    stderr = done.stderr.decode()
    assert done.returncode == 1 and "the header must be accession,patient_id" in stderr
    nowhere = run(tmp_path, "import", str(odd), "--clinic", "south")
    assert nowhere.returncode == 1 and "clinics create" in nowhere.stderr.decode()
    assert "Traceback" not in stderr + nowhere.stderr.decode()


@pytest.mark.skipif(not NHANES, reason=f"no NHANES fixtures under {SHARED}/fixtures/nhanes")
def test_nhanes_imports_as_its_real_panels_published_200_per_message(app):
    """6,401 people: 5,905 with at least one result become panels; the 496 with none are
    refused as the API refuses them (results: at least one result is required). The relay
    publishes the imported panels in chunks, and a worker's batch interprets them."""
    runtime, _, _ = app
    summary, report = import_text(runtime, NHANES[0].read_text())
    assert (summary.rows, summary.panels) == (6401, 6401)
    assert (summary.imported, summary.rejected, summary.conflicting) == (5905, 496, 0)
    rows = report_rows(report)
    assert len(rows) == 496 and {row["field"] for row in rows} == {"results"}

    # the workers' relay hands them to the broker 200 per message, not one message each
    broker = RecordingCelery()
    dispatcher = Dispatcher(broker)
    while relay_unpublished(runtime.engine, dispatcher, dt.datetime.now(dt.UTC)).published:
        pass
    published = [panel_id for ids in broker.messages for panel_id in ids]
    assert len(published) == len(set(published)) == 5905
    assert len(broker.messages) == 30  # ceil(5,905 / 200)

    sample = [uuid.UUID(panel_id) for panel_id in broker.messages[0]]
    outcome = interpret_panels(runtime.engine, runtime.rulesets, sample, max_attempts=5)
    assert sorted(outcome.interpreted) == sorted(sample), outcome.summary()


class RecordingCelery:
    """Celery as the dispatcher sees it: records each message's panel ids."""

    def __init__(self) -> None:
        self.messages: list[list[str]] = []

    def send_task(self, name: str, args: list[list[str]], **options: object) -> None:
        self.messages.append(args[0])


def test_the_reader_is_a_stream_whose_memory_does_not_grow_with_the_file(tmp_path):
    """read_panels is a generator holding one panel's rows; reading a file of 300,000 rows
    peaks at about the same RSS as one of 30,000 (each in a fresh process)."""
    assert isinstance(read_panels(io.StringIO(csv_text())), types.GeneratorType)
    probe = (
        "import resource, sys\n"
        "from labinterp.services.importing import open_source, read_panels\n"
        "with open_source(sys.argv[1]) as source:\n"
        "    n = sum(1 for _ in read_panels(source.text))\n"
        "print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    peaks = {}
    for panels in (10_000, 100_000):
        path = tmp_path / f"{panels}.csv.gz"
        with gzip.open(path, "wt", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(HEADER)
            for n in range(panels):
                writer.writerows(
                    rows_of(f"G-{n}", f"P{n}", potassium="4.1 mmol/L", sodium="140 mmol/L")
                    + rows_of(f"G-{n}", f"P{n}", calcium="9.1 mg/dL")
                )
        done = subprocess.run(
            [sys.executable, "-c", probe, str(path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        count, peak_kib = map(int, done.stdout.split())
        assert count == panels
        peaks[panels] = peak_kib
    assert peaks[100_000] - peaks[10_000] < 8 * 1024, peaks  # KiB: 10x the rows, < 8 MiB more


@pytest.mark.postgres
def test_import_on_postgresql_is_batched_idempotent_and_queues_for_the_relay(tmp_path):
    with fresh_postgres_database() as url:
        env = {"DATABASE_URL": url}
        assert run(tmp_path, "db", "upgrade", **env).returncode == 0
        assert run(tmp_path, "clinics", "create", "north", **env).returncode == 0
        many = [rows_of(f"PG-{n}", f"P{n}", potassium="4.1 mmol/L") for n in range(250)]
        text = csv_text(*many, rows_of("PG-bad", potassium="4.1 volts")).encode()
        first = run(tmp_path, "import", "-", "--clinic", "north", stdin=text, **env)
        assert first.returncode == 0, first.stderr
        assert "imported 250, already present 0, conflicting 0, rejected 1" in first.stdout.decode()
        second = run(tmp_path, "import", "-", "--clinic", "north", stdin=text, **env)
        assert (
            "imported 0, already present 250, conflicting 0, rejected 1" in second.stdout.decode()
        )

        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                counts = conn.execute(
                    select(Panel.status, func.count(), func.count(Panel.enqueued_at)).group_by(
                        Panel.status
                    )
                ).all()
        finally:
            engine.dispose()
        assert [(str(s), n, e) for s, n, e in counts] == [(str(PanelStatus.QUEUED), 250, 0)]
