"""`labinterp import FILE` reads FHIR NDJSON (one Bundle per line) as it reads CSV: streamed, a
panel per line, each accepted or refused whole, with the error report naming the line, the
accession and the FHIRPath of the field."""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import io
import json
from pathlib import Path

from sqlalchemy import select

from labinterp.interop.fhir_in import ndjson_panels
from labinterp.models import PanelRevision
from labinterp.runtime import Runtime
from labinterp.services.accounts import find_clinic
from labinterp.services.importing import ErrorReport, import_panels, open_source, read_panels
from labinterp.services.panels import ClinicRef
from tests.api.conftest import clinic_app
from tests.api.test_fhir_intake import lab_report, observation
from tests.integration.test_import import OPERATOR, report_rows, run


def ndjson(*bundles: str) -> str:
    return "".join(f"{bundle}\n" for bundle in bundles)


def bundle(accession: str, *, potassium_unit: str = "mmol/L") -> str:
    """One Bundle on one line (fhir.resources writes compact JSON)."""
    return lab_report(
        observation("k", "2823-3", "4.1", potassium_unit, low="3.5", high="5.1"),
        observation("rbc-mg", "2593-2", "2.45"),
        accession=accession,
    ).model_dump_json(exclude_none=True)


def import_ndjson(runtime: Runtime, text: str) -> tuple[int, int, list[dict[str, str]]]:
    """(imported, rejected, the error report's rows) of importing ``text`` for clinic c."""
    with runtime.session_factory() as session:
        found = find_clinic(session, "c")
    ruleset = runtime.rulesets[runtime.settings.default_ruleset]
    errors = io.StringIO()
    with open_source("-", stdin=io.BytesIO(text.encode())) as source:
        summary = import_panels(
            runtime.engine,
            OPERATOR,
            ClinicRef(found.id, found.name),
            read_panels(source.text, ndjson=functools.partial(ndjson_panels, ruleset=ruleset)),
            ruleset,
            dt.datetime.now(dt.UTC),
            ErrorReport(errors),
        )
    return summary.imported, summary.rejected, report_rows(errors.getvalue())


def test_ndjson_lines_become_panels_and_a_bad_line_is_reported_by_line_and_fhirpath(
    tmp_path: Path,
) -> None:
    runtime, _, _ = clinic_app({"LABINTERP_INSTANCE": str(tmp_path)}, "c")
    text = ndjson(
        bundle("NDJ-1"),
        "{not json",
        "",  # a blank line counts, and is skipped
        bundle("NDJ-3", potassium_unit="mg/dL"),
        bundle("NDJ-4"),
    )
    imported, rejected, report = import_ndjson(runtime, text)
    assert (imported, rejected) == (2, 2)
    assert [(r["line"], r["accession"], r["field"]) for r in report] == [
        ("2", "", "Bundle"),
        ("4", "NDJ-3", "Bundle.entry[2].resource.valueQuantity.code"),
    ]
    assert "not valid JSON" in report[0]["reason"]
    assert "'mg/dL' is not valid for potassium" in report[1]["reason"]
    with runtime.session_factory() as session:
        revisions = session.scalars(select(PanelRevision)).all()
        assert {r.source_format for r in revisions} == {"fhir"}
        assert all([n["code"] for n in r.not_interpreted or []] == ["2593-2"] for r in revisions)
    # again: nothing new, the same lines refused
    assert import_ndjson(runtime, text)[:2] == (0, 2)


def test_the_command_imports_gzipped_ndjson_with_its_error_report(tmp_path: Path) -> None:
    assert run(tmp_path, "clinics", "create", "north").returncode == 0
    lines = ndjson(bundle("CLI-1"), bundle("CLI-2"), json.dumps({"resourceType": "Patient"}))
    history = tmp_path / "history.ndjson.gz"
    history.write_bytes(gzip.compress(lines.encode()))
    errors = tmp_path / "errors.csv"
    done = run(tmp_path, "import", str(history), "--clinic", "north", "--errors", str(errors))
    assert done.returncode == 0, done.stderr
    assert "imported 2, already present 0, conflicting 0, rejected 1" in done.stdout.decode()
    assert "panels/s" in done.stderr.decode()
    (row,) = report_rows(errors.read_text())
    assert (row["line"], row["field"]) == ("3", "resourceType")
    assert "expected a Bundle" in row["reason"]
