"""POST /hl7/v2: ORU^R01 messages built with hl7apy go in, each OBR group becomes a panel that
reads back like a JSON-posted one, and the ACK parsed back with hl7apy says what happened:
AA, AE naming OBX[n]-6, AR for what is not an ORU^R01; retransmissions, corrections,
preliminaries; the real fixture messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from labinterp.models import AuditEvent, Panel, PanelRevision
from labinterp.runtime import Runtime
from labinterp.services.accounts import set_clinic_time_zone
from labinterp.services.audit import Actor
from labinterp.services.clinic_codes import import_codes, read_rows
from tests.api.conftest import Tokens, assert_problem, auth, postgres_clinic_app
from tests.hl7_builder import Ack, Obr, Obx, Oru, parse_ack

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "hl7v2"
HL7 = "application/hl7-v2"
OPERATOR = Actor(name="cli:test", role="admin")

# magnesium as SN (^0.55), as some labs send every numeric result
MG = Obx("2601-3", "Magnesium", "LN", "^0.55", "SN", unit="mmol/L", range="0.70-1.00", flag="L")
K = Obx("2823-3", "Potassium", "LN", "3.1", unit="mmol/L", range="3.5 to 5.1", flag="L")
NA = Obx("2951-2", "Sodium", "LN", "138", unit="mmol/L", range="136_145", flag="L")


def post(client: FlaskClient, token: str, data: bytes, kind: str = HL7) -> Ack:
    response = client.post("/hl7/v2", data=data, headers={**auth(token), "Content-Type": kind})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == kind
    return parse_ack(response.get_data())


def panels(client: FlaskClient, token: str, accession: str) -> list[dict[str, Any]]:
    body = client.get(f"/api/v1/panels?accession={accession}", headers=auth(token)).get_json()
    return list(body["items"])


def panel(client: FlaskClient, token: str, accession: str) -> dict[str, Any]:
    (item,) = panels(client, token, accession)
    return dict(client.get(f"/api/v1/panels/{item['id']}", headers=auth(token)).get_json())


def count(runtime: Runtime, model: Any) -> int:
    with runtime.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_an_oru_becomes_a_panel_and_the_ack_is_aa_echoing_msh10(
    client: FlaskClient, tokens: Tokens, work: Any
) -> None:
    oru = Oru([Obr([MG, K, NA], filler="HL7-ACC-1")], control_id="MSG-0001")
    ack = post(client, tokens.clinic, oru.bytes())
    assert (ack.code, ack.control_id) == ("AA", "MSG-0001")
    assert ack.text.startswith("1 of 1 OBR groups stored (1 new)")
    stored = panel(client, tokens.clinic, "HL7-ACC-1")
    assert stored["patient"]["id"] == "P-0042"
    by_analyte = {r["analyte"]: r for r in stored["results"]}
    assert by_analyte["sodium"]["sender_flag"] == "L"  # the sender's flag, kept beside ours
    assert str(by_analyte["potassium"]["reported"]["value"]) == "3.1"
    work(stored["id"])
    interpreted = panel(client, tokens.clinic, "HL7-ACC-1")["interpretation"]
    codes = {f["code"] for f in interpreted["findings"]}
    assert {"hypomagnesemia", "hypokalemia"} <= codes


def test_a_retransmission_is_the_same_aa_and_is_not_stored_twice(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    data = Oru([Obr([MG], filler="HL7-RETX")], control_id="MSG-R").bytes()
    first = post(client, tokens.clinic, data)
    again = post(client, tokens.clinic, data)
    assert (first.code, again.code) == ("AA", "AA")
    assert again.control_id == "MSG-R" and "(0 new)" in again.text
    assert len(panels(client, tokens.clinic, "HL7-RETX")) == 1
    assert count(runtime, PanelRevision) == 1


def test_a_bad_unit_is_an_ae_naming_obx_n_6_and_nothing_is_stored(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    bad_k = Obx("2823-3", "Potassium", "LN", "3.1", unit="mg/dL")
    ack = post(client, tokens.clinic, Oru([Obr([MG, bad_k], filler="HL7-BAD")]).bytes())
    assert ack.code == "AE"
    (error,) = [e for e in ack.errors if e["severity"] == "E"]
    assert error["location"] == "OBX^2^6" and error["code"] == "103"
    assert "'mg/dL' is not valid for potassium" in error["text"]
    assert panels(client, tokens.clinic, "HL7-BAD") == []


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_older_versions_name_the_field_in_err_1(
    client: FlaskClient, tokens: Tokens, version: str
) -> None:
    bad_k = Obx("2823-3", "Potassium", "LN", "3.1", unit="mg/dL")
    oru = Oru([Obr([MG, bad_k], filler="HL7-OLD")], version=version)
    ack = post(client, tokens.clinic, oru.bytes(), "x-application/hl7-v2+er7")
    assert (ack.code, ack.version) == ("AE", version)
    (error,) = ack.errors
    assert error["location"] == "OBX^2^6" and "potassium" in error["text"]


def test_several_obr_groups_are_several_panels_and_one_bad_group_does_not_stop_the_other(
    client: FlaskClient, tokens: Tokens
) -> None:
    bad = Obx("2951-2", "Sodium", "LN", "138", unit="g/L")
    data = Oru([Obr([MG], filler="HL7-G1"), Obr([K, bad], filler="HL7-G2")]).bytes()
    ack = post(client, tokens.clinic, data)
    assert ack.code == "AE" and ack.text.startswith("1 of 2 OBR groups stored")
    assert [e["location"] for e in ack.errors] == ["OBX^3^6"]
    assert len(panels(client, tokens.clinic, "HL7-G1")) == 1
    assert panels(client, tokens.clinic, "HL7-G2") == []
    fixed = Oru([Obr([MG], filler="HL7-G1"), Obr([K, NA], filler="HL7-G2")]).bytes()
    assert post(client, tokens.clinic, fixed).code == "AA"
    assert len(panels(client, tokens.clinic, "HL7-G2")) == 1


def test_a_correction_creates_revision_2_and_the_same_accession_without_c_is_refused(
    client: FlaskClient, tokens: Tokens
) -> None:
    assert post(client, tokens.clinic, Oru([Obr([MG, K], filler="HL7-C")]).bytes()).code == "AA"
    changed_k = Obx("2823-3", "Potassium", "LN", "3.4", unit="mmol/L")
    refused = post(client, tokens.clinic, Oru([Obr([MG, changed_k], filler="HL7-C")]).bytes())
    assert refused.code == "AE"
    (conflict,) = refused.errors
    assert conflict["location"] == "OBR^1^3" and conflict["code"] == "205"
    assert "OBX-11 C" in conflict["text"]
    corrected = Obx("2823-3", "Potassium", "LN", "3.4", unit="mmol/L", status="C")
    data = Oru([Obr([MG, corrected], filler="HL7-C")]).bytes()
    assert post(client, tokens.clinic, data).code == "AA"
    assert post(client, tokens.clinic, data).code == "AA"  # retransmitted: still revision 2
    stored = panel(client, tokens.clinic, "HL7-C")
    assert stored["revision"] == 2
    by_analyte = {r["analyte"]: r for r in stored["results"]}
    assert str(by_analyte["potassium"]["reported"]["value"]) == "3.4"


def test_a_correction_of_one_obx_alone_keeps_the_other_results(
    client: FlaskClient, tokens: Tokens
) -> None:
    """The lab resends only the corrected potassium: magnesium and sodium stay in revision 2
    (a result left out is not a result withdrawn)."""
    first = Oru([Obr([MG, K, NA], filler="HL7-C1")]).bytes()
    assert post(client, tokens.clinic, first).code == "AA"
    corrected = Obx("2823-3", "Potassium", "LN", "4.2", unit="mmol/L", status="C")
    assert (
        post(client, tokens.clinic, Oru([Obr([corrected], filler="HL7-C1")]).bytes()).code == "AA"
    )
    stored = panel(client, tokens.clinic, "HL7-C1")
    assert stored["revision"] == 2
    values = {r["analyte"]: str(r["reported"]["value"]) for r in stored["results"]}
    assert values == {"potassium": "4.2", "magnesium": "0.55", "sodium": "138"}
    flags = {r["analyte"]: r["sender_flag"] for r in stored["results"]}
    assert flags["sodium"] == "L" and flags["potassium"] is None


def test_a_preliminary_is_interpreted_marked_and_its_final_is_a_new_revision(
    client: FlaskClient, tokens: Tokens
) -> None:
    preliminary = Obx("2601-3", "Magnesium", "LN", "0.55", unit="mmol/L", status="P")
    assert (
        post(client, tokens.clinic, Oru([Obr([preliminary], filler="HL7-P")]).bytes()).code == "AA"
    )
    stored = panel(client, tokens.clinic, "HL7-P")
    assert stored["context"]["notes"].startswith("Preliminary results (HL7 v2 OBX-11 P")
    final = Obx("2601-3", "Magnesium", "LN", "0.55", unit="mmol/L", status="F")
    assert post(client, tokens.clinic, Oru([Obr([final], filler="HL7-P")]).bytes()).code == "AA"
    stored = panel(client, tokens.clinic, "HL7-P")
    assert stored["revision"] == 2 and not (stored.get("context") or {}).get("notes")


def test_x_censored_and_foreign_results_are_not_interpreted_and_named_in_the_ack(
    client: FlaskClient, tokens: Tokens
) -> None:
    x = Obx("2823-3", "Potassium", "LN", "", status="X")
    censored = Obx("2951-2", "Sodium", "LN", "<^100", value_type="SN")
    hb = Obx("718-7", "Hemoglobin", "LN", "12.5", unit="g/dL")
    ack = post(client, tokens.clinic, Oru([Obr([MG, x, censored, hb], filler="HL7-NI")]).bytes())
    assert ack.code == "AA"
    noted = {e["location"]: e["text"] for e in ack.errors}
    assert set(noted) == {"OBX^2^11", "OBX^3^5", "OBX^4^3"}
    assert all(e["severity"] == "I" for e in ack.errors)
    assert "censored value '<^100'" in noted["OBX^3^5"]
    assert [r["analyte"] for r in panel(client, tokens.clinic, "HL7-NI")["results"]] == [
        "magnesium"
    ]


def test_a_local_code_is_mapped_by_the_clinics_code_table(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    local = Obx("MG", "Magnesium serum", "99CITY", "1.1", unit="mg/dL")
    oru = Oru([Obr([local], filler="HL7-LOCAL")])
    before = post(client, tokens.clinic, oru.bytes())
    assert before.code == "AE" and "not in the clinic's code table" in before.errors[0]["text"]
    rows = read_rows(["system,code,analyte", "99city,MG,magnesium", ",K1,potassium"])
    with runtime.session_factory() as session:
        imported = import_codes(session, OPERATOR, "north", rows, runtime.rulesets["2026.1"])
        assert (imported.added, imported.changed) == (2, 0)
        assert session.scalar(
            select(func.count()).where(AuditEvent.action == "clinic_codes.import")
        )
    assert post(client, tokens.clinic, oru.bytes()).code == "AA"
    (result,) = panel(client, tokens.clinic, "HL7-LOCAL")["results"]
    assert result["analyte"] == "magnesium"


def test_a_naive_time_is_read_in_the_clinics_time_zone(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    with runtime.session_factory() as session:
        set_clinic_time_zone(session, "north", "America/New_York", actor=OPERATOR)
    oru = Oru([Obr([MG], filler="HL7-TZ", collected="202601150830")])
    assert post(client, tokens.clinic, oru.bytes()).code == "AA"
    assert panel(client, tokens.clinic, "HL7-TZ")["collected_at"] == "2026-01-15T13:30:00Z"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"this is not HL7", "must begin with an MSH segment"),
        (b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|CTL-9|P|2.5.1\rPID|||1\r", "ORU^R01"),
    ],
)
def test_what_is_not_an_oru_is_an_ar_with_http_200(
    client: FlaskClient, tokens: Tokens, data: bytes, words: str
) -> None:
    ack = post(client, tokens.clinic, data)
    assert ack.code == "AR" and words in ack.text + ack.errors[0]["text"]
    if b"CTL-9" in data:
        assert ack.control_id == "CTL-9"


def test_auth_content_type_and_size_are_problem_json(
    client: FlaskClient, tokens: Tokens, app: Any
) -> None:
    data = Oru([Obr([MG], filler="HL7-AUTH")]).bytes()
    assert_problem(client.post("/hl7/v2", data=data, headers={"Content-Type": HL7}), 401)
    admin = {**auth(tokens.admin), "Content-Type": HL7}
    assert_problem(client.post("/hl7/v2", data=data, headers=admin), 403)
    json_type = {**auth(tokens.clinic), "Content-Type": "application/json"}
    body = assert_problem(client.post("/hl7/v2", data=data, headers=json_type), 415)
    assert "application/hl7-v2" in body["detail"]
    big = data + b"NTE|1||" + b"x" * app.config["MAX_CONTENT_LENGTH"] + b"\r"
    headers = {**auth(tokens.clinic), "Content-Type": HL7}
    assert_problem(client.post("/hl7/v2", data=big, headers=headers), 413)


def test_another_clinics_token_stores_in_its_own_clinic(
    client: FlaskClient, tokens: Tokens
) -> None:
    data = Oru([Obr([MG], filler="HL7-TENANT")]).bytes()
    assert post(client, tokens.other_clinic, data).code == "AA"
    assert panels(client, tokens.clinic, "HL7-TENANT") == []
    assert len(panels(client, tokens.other_clinic, "HL7-TENANT")) == 1


# --- the real messages -----------------------------------------------------------------------


def _fixture(name: str) -> bytes:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"no fixture {path}")
    return path.read_bytes()


def test_the_glucose_fixture_is_acknowledged_ae_naming_its_local_code(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    ack = post(client, tokens.clinic, _fixture("msfhirconv-ORU-R01-RMGEAD.hl7"))
    assert (ack.code, ack.control_id, ack.version) == ("AE", "CNTRL-3456", "2.4")
    (error,) = ack.errors  # v2.4: errors only, in ERR-1
    assert error["location"] == "OBR^1^" and error["code"] == "103"
    assert "OBX[1]-3 GLUCOSE: local code '1554-5'" in error["text"]
    assert count(runtime, Panel) == 0


def test_the_nist_cbc_fixture_is_acknowledged_ae_listing_what_it_holds(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    ack = post(client, tokens.clinic, _fixture("msfhirconv-LRI_2.0-NG_CBC_Typ_Message.hl7"))
    assert (ack.code, ack.control_id, ack.version) == ("AE", "NIST-LRI-NG-002.00", "2.5.1")
    errors = [e for e in ack.errors if e["severity"] == "E"]
    assert [e["location"] for e in errors] == ["OBR^1"]
    assert "none of the 28 results of OBR[1]" in errors[0]["text"]
    noted = [e for e in ack.errors if e["severity"] == "I"]
    assert len(noted) == 28 and noted[1]["location"] == "OBX^2^3"
    assert "Hemoglobin" in noted[1]["text"]
    assert count(runtime, Panel) == 0


@pytest.mark.postgres
def test_on_postgresql_local_codes_corrections_and_retransmissions(tmp_path: Path) -> None:
    """The same flow on PostgreSQL: a local code through the code table, the message stored
    once however often it comes, its correction revision 2, the original kept as received."""
    with postgres_clinic_app(tmp_path, "north") as (runtime, client, token):
        rows = read_rows(["system,code,analyte", "99CITY,MG,magnesium"])
        with runtime.session_factory() as session:
            import_codes(session, OPERATOR, "north", rows, runtime.rulesets["2026.1"])
        local = Obx("MG", "Magnesium serum", "99CITY", "1.1", unit="mg/dL")
        data = Oru([Obr([local, K], filler="PG-1")]).bytes("\n")
        assert [post(client, token, data).code for _ in range(2)] == ["AA", "AA"]
        corrected = Obx("2823-3", "Potassium", "LN", "3.9", unit="mmol/L", status="C")
        assert post(client, token, Oru([Obr([corrected], filler="PG-1")]).bytes()).code == "AA"
        stored = panel(client, token, "PG-1")
        assert stored["revision"] == 2
        assert {r["analyte"]: str(r["reported"]["value"]) for r in stored["results"]} == {
            "magnesium": "1.1",
            "potassium": "3.9",
        }
        with runtime.session_factory() as session:
            first = session.scalars(select(PanelRevision).where(PanelRevision.revision == 1)).one()
            assert first.source_format == "hl7v2"
            assert first.source_document == data.decode()
