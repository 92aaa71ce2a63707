"""ORU^R01 in (labinterp.interop.hl7): the real fixture messages, and messages built with
hl7apy, read into panel documents with the sender's paths; every value and range form labs
write; what cannot be processed at all; the ACK each answer is built as."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from labinterp.interop.hl7 import Unprocessable, parse_oru
from labinterp.interop.hl7_ack import AckError, build_ack
from labinterp.interop.hl7_fields import reference_range, structured_numeric
from labinterp.rulesets import load_rulesets
from labinterp.rulesets.loader import default_directory
from tests.hl7_builder import Obr, Obx, Oru, Patient, parse_ack

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "hl7v2"
RULESET = load_rulesets(default_directory())["2026.1"]
NO_CODES = lambda system, code: None  # noqa: E731 - a clinic without a code table


def parse(data: bytes | str, codes=NO_CODES, zone: dt.tzinfo = dt.UTC):  # type: ignore[no-untyped-def]
    return parse_oru(data, RULESET, codes, zone)


def one(data: bytes | str, **kwargs):  # type: ignore[no-untyped-def]
    (order,) = parse(data, **kwargs).orders
    return order


def fixture(name: str) -> bytes:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"no fixture {path} (../shared beside the checkout)")
    return path.read_bytes()


# --- the real messages -----------------------------------------------------------------------


def test_the_classic_glucose_example_is_read_and_its_local_code_kept_aside() -> None:
    """msfhirconv-ORU-R01-RMGEAD.hl7 (v2.4, LF endings): OBR-3 is the accession, PID-3 the
    patient, OBR-7 with its +0600 offset the collection time; OBX-3 is not coded LN, so the
    clinic's code table decides, and glucose is in none: kept, named, not interpreted, and
    the group has nothing to interpret (an AE naming OBR[1])."""
    data = fixture("msfhirconv-ORU-R01-RMGEAD.hl7")
    assert b"\r" not in data  # LF endings, as the file holds them
    message = parse(data)
    assert message.header.control_id == "CNTRL-3456" and message.header.version == "2.4"
    (order,) = message.orders
    doc = order.translated.document
    assert doc["accession"] == "1045813"
    assert doc["patient"] == {"id": "555-44-4444", "sex": "female", "birth_date": "1962-03-20"}
    assert doc["collected_at"] == "2002-02-15T07:30:00+06:00"
    assert doc["results"] == []
    (kept,) = order.translated.not_interpreted
    assert kept["path"] == "OBX[1]-3" and kept["code"] == "1554-5"
    assert "not in the clinic's code table" in kept["reason"]
    assert list(order.errors) == ["OBR[1]"]
    assert "none of the 1 results of OBR[1]" in order.errors["OBR[1]"][0]
    assert order.translated.source_format == "hl7v2"


def test_the_glucose_example_with_a_code_table_entry_reads_its_sn_value_and_range() -> None:
    """The same message where the clinic's code table maps its local code: SN ``^182`` is 182,
    ``70_105`` is low 70 high 105, OBX-8 ``H`` is the sender's flag (glucose is no analyte
    of ours, so the table maps it to one only for this test of the reading)."""
    data = fixture("msfhirconv-ORU-R01-RMGEAD.hl7")
    seen: list[tuple[str, str]] = []

    def codes(system: str, code: str) -> str | None:
        seen.append((system, code))
        return "sodium" if code == "1554-5" else None

    order = one(data, codes=codes)
    assert seen == [("POST 12H CFST:MCNC:PT:SER/PLAS:QN", "1554-5")]
    assert order.translated.document["results"] == [
        {
            "analyte": "sodium",
            "value": Decimal("182"),
            "unit": "mg/dl",
            "reference_range": {"low": Decimal("70"), "high": Decimal("105")},
            "sender_flag": "H",
        }
    ]
    assert order.translated.paths["results.0.unit"] == "OBX[1]-6"
    assert order.errors == {}


def test_the_nist_cbc_message_with_a_byte_order_mark_is_read_and_nothing_in_it_is_ours() -> None:
    """msfhirconv-LRI_2.0-NG_CBC_Typ_Message.hl7 (v2.5.1, UTF-8 BOM): OBR-3's first component
    is the accession; its 28 OBX (blood counts, CWE and TX findings) are all kept as not
    interpreted, each named with its LOINC; the -0800 collection offset is kept."""
    data = fixture("msfhirconv-LRI_2.0-NG_CBC_Typ_Message.hl7")
    assert data.startswith(b"\xef\xbb\xbf")
    message = parse(data)
    assert message.header.control_id == "NIST-LRI-NG-002.00"
    (order,) = message.orders
    doc = order.translated.document
    assert doc["accession"] == "R-991133"
    assert doc["patient"] == {"id": "PATID1234", "sex": "male", "birth_date": "1961-06-15"}
    assert doc["collected_at"] == "2011-01-03T14:34:28-08:00"
    kept = order.translated.not_interpreted
    assert len(kept) == 28
    assert kept[1] == {
        "path": "OBX[2]-3",
        "code": "718-7",
        "display": "Hemoglobin [Mass/volume] in Blood",
        "reason": "LOINC 718-7 is not an analyte labinterp interprets",
    }
    assert "none of the 28 results" in order.errors["OBR[1]"][0]
    assert order.translated.source_text == data.decode("utf-8")  # as received, BOM and all


# --- built messages --------------------------------------------------------------------------

MG = Obx("2601-3", "Magnesium", "LN", "0.55", unit="mmol/L", range="0.70-1.00", flag="L")
K = Obx("2823-3", "Potassium", "LN", "3.1", unit="mmol/L", range="3.5 to 5.1", flag="L")


@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n"])
@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1"])
def test_every_supported_version_and_segment_ending_reads_the_same(
    ending: str, version: str
) -> None:
    data = Oru([Obr([MG, K], filler="ACC-1")], version=version).bytes(ending, bom=True)
    order = one(data)
    assert order.errors == {}
    doc = order.translated.document
    assert doc["accession"] == "ACC-1"
    assert doc["patient"] == {"id": "P-0042", "sex": "female", "birth_date": "1984-03-09"}
    assert [r["loinc"] for r in doc["results"]] == ["2601-3", "2823-3"]
    assert doc["results"][1]["reference_range"] == {"low": Decimal("3.5"), "high": Decimal("5.1")}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3.5-5.1", {"low": Decimal("3.5"), "high": Decimal("5.1")}),
        ("4.3 to 6.2", {"low": Decimal("4.3"), "high": Decimal("6.2")}),
        ("70_105", {"low": Decimal("70"), "high": Decimal("105")}),
        (" 0.70 - 1.00 ", {"low": Decimal("0.70"), "high": Decimal("1.00")}),
        ("<7.2", {"high": Decimal("7.2")}),
        ("<= 7.2", {"high": Decimal("7.2")}),
        (">2", {"low": Decimal("2")}),
        (">=30", {"low": Decimal("30")}),
        ("Winter: 20-100, Summer: 30-100", {"text": "Winter: 20-100, Summer: 30-100"}),
        ("negative", {"text": "negative"}),
        ("", {}),
    ],
)
def test_obx7_ranges_as_labs_write_them(text: str, expected: dict[str, object]) -> None:
    assert reference_range(text) == expected


@pytest.mark.parametrize(
    ("components", "number", "censored"),
    [
        (["", "182"], Decimal("182"), None),
        (["=", "182"], Decimal("182"), None),
        (["<", "7"], None, "<^7"),
        ([">", "2000"], None, ">^2000"),
        (["<7"], None, "<7"),
    ],
)
def test_sn_values(components: list[str], number: Decimal | None, censored: str | None) -> None:
    value = structured_numeric(components)
    assert (value.number, value.censored) == (number, censored)


def test_sn_ratio_is_not_one_value() -> None:
    assert "ratio or range" in (structured_numeric(["", "1", ":", "2"]).reason or "")


@pytest.mark.parametrize(
    ("value_type", "value"), [("NM", "<0.5"), ("SN", "<^0.5"), ("ST", "< 0.5")]
)
def test_a_censored_value_is_kept_named_and_never_guessed(value_type: str, value: str) -> None:
    """``<0.5`` is not 0.5 nor 0.49: the result is left out of the panel (not judged) and named
    in not_interpreted as censored; the other results are interpreted."""
    low_mg = Obx("2601-3", "Magnesium", "LN", value, value_type=value_type)
    order = one(Oru([Obr([low_mg, K], filler="ACC-C")]).bytes())
    assert [r["loinc"] for r in order.translated.document["results"]] == ["2823-3"]
    assert order.translated.paths["results.0.value"] == "OBX[2]-5"
    (kept,) = order.translated.not_interpreted
    assert kept["path"] == "OBX[1]-5" and kept["code"] == "2601-3"
    assert kept["reason"].startswith(f"censored value {value!r}")
    assert order.errors == {}


def test_sn_value_of_an_analyte_of_ours() -> None:
    sn = Obx("2823-3", "Potassium", "LN", "^6.8", value_type="SN", flag="HH")
    (result,) = one(Oru([Obr([sn], filler="ACC-SN")]).bytes()).translated.document["results"]
    assert result["value"] == Decimal("6.8") and result["sender_flag"] == "HH"


def test_statuses_x_not_interpreted_c_correction_p_preliminary() -> None:
    x = Obx("2823-3", "Potassium", "LN", "", status="X")
    order = one(Oru([Obr([MG, x], filler="A1")]).bytes())
    assert order.kind == "final"
    assert order.translated.not_interpreted[0]["path"] == "OBX[2]-11"
    assert "cannot be obtained" in order.translated.not_interpreted[0]["reason"]
    corrected = Obx("2601-3", "Magnesium", "LN", "0.60", status="C")
    assert one(Oru([Obr([corrected, K], filler="A1")]).bytes()).kind == "correction"
    preliminary = Obx("2601-3", "Magnesium", "LN", "0.60", status="P")
    assert one(Oru([Obr([preliminary], filler="A1")]).bytes()).kind == "preliminary"


def test_several_obr_groups_are_one_panel_each_with_message_wide_obx_numbers() -> None:
    message = parse(
        Oru(
            [
                Obr([MG], filler="ACC-A"),
                Obr([K, Obx("2951-2", "Sodium", "LN", "138")], placer="P-B"),
            ]
        ).bytes()
    )
    first, second = message.orders
    assert (first.index, second.index) == (1, 2)
    assert first.translated.document["accession"] == "ACC-A"
    assert first.translated.paths["accession"] == "OBR[1]-3"
    assert second.translated.document["accession"] == "P-B"
    assert second.translated.paths["accession"] == "OBR[2]-2"
    assert second.translated.paths["results.1.unit"] == "OBX[3]-6"


def test_no_accession_no_collection_time_no_patient_id_name_their_fields() -> None:
    oru = Oru([Obr([MG], collected="")], patient=Patient(id=""))
    order = one(oru.bytes())
    assert "OBR[1]-3" in order.errors and "OBR-2" in order.errors["OBR[1]-3"][0]
    assert "OBR[1]-7" in order.errors and "PID-3" in order.errors


def test_obx14_when_obr7_is_empty_and_a_naive_time_is_read_in_the_clinics_zone() -> None:
    mg = Obx("2601-3", "Magnesium", "LN", "0.8", observed="202607011015")
    order = one(
        Oru([Obr([mg], filler="A", collected="")]).bytes(), zone=ZoneInfo("Europe/Brussels")
    )
    assert order.translated.document["collected_at"] == "2026-07-01T10:15:00+02:00"
    assert order.translated.paths["collected_at"] == "OBX[1]-14"


def test_a_non_numeric_value_of_an_analyte_of_ours_is_an_error_at_obx5() -> None:
    order = one(Oru([Obr([Obx("2601-3", "Mg", "LN", "hemolysed")], filler="A")]).bytes())
    assert (
        "OBX[1]-5" in order.errors and "'hemolysed' is not a number" in order.errors["OBX[1]-5"][0]
    )


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "100", "must begin with an MSH segment"),
        (b"", "100", "must begin with an MSH"),
        (b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X|P|2.5.1\r", "200", "ORU^R01"),
        (b"MSH|^~\\&|A|B|C|D|20240101||ORU^R30|X|P|2.5.1\r", "201", "ORU^R01"),
        (b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|X|P|2.7\r", "203", "2.3, 2.3.1"),
        (b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|X|P|2.5.1\rPID|||1\r", "100", "no OBR"),
        (b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|X|P|2.5.1\rPID|||1\x00\r", "102", "NUL"),
    ],
)
def test_what_cannot_be_processed_at_all(data: bytes, code: str, words: str) -> None:
    with pytest.raises(Unprocessable) as raised:
        parse(data)
    assert raised.value.code == code and words in raised.value.text


# --- ACKs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.3", "2.4", "2.5", "2.5.1"])
def test_an_ae_names_segment_sequence_and_field_in_the_messages_version(version: str) -> None:
    oru = Oru([Obr([MG], filler="A")], version=version, control_id="CTRL-77")
    header = parse(oru.bytes()).header
    text = build_ack(
        header,
        "AE",
        "1 of 1 OBR groups refused",
        [AckError("OBX[2]-6", "unit 'mg/dL' is not valid for potassium; use mmol/L", "103")],
    )
    ack = parse_ack(text)
    assert (ack.code, ack.control_id, ack.version) == ("AE", "CTRL-77", version)
    (error,) = ack.errors
    assert error["location"] == "OBX^2^6" and error["code"] == "103"
    assert error["text"] == "unit 'mg/dL' is not valid for potassium; use mmol/L"
    msh = ack.message.children[0]
    assert msh.msh_5.to_er7() == "LABSYS" and msh.msh_9.to_er7().startswith("ACK")


def test_a_message_of_more_segments_than_are_read_in_reasonable_time_is_an_ar() -> None:
    """hl7apy takes milliseconds per segment: a message of thousands of results (a body of a
    megabyte) is refused before it is parsed, with a message that says what to do."""
    message = Oru([Obr([MG], filler="BIG")]).er7()
    obx = message.rstrip("\r").rsplit("\r", 1)[1] + "\r"
    many = (message + obx * 1000).encode()
    with pytest.raises(Unprocessable) as raised:
        parse(many)
    assert raised.value.code == "207" and "several messages" in raised.value.text
    assert raised.value.header is not None and raised.value.header.control_id


def test_a_second_patient_in_one_message_is_named_pid_2() -> None:
    """ORU^R01 repeats PATIENT_RESULT: each OBR belongs to the PID before it, and an error in
    the second patient names PID[2]."""
    first = Oru([Obr([MG], filler="A-1")]).er7()
    second = Oru([Obr([K], filler="A-2")], patient=Patient(id="", birth="19990231")).er7()
    data = first + "\r".join(second.split("\r")[1:])  # the second message without its MSH
    one_, two = parse(data).orders
    assert one_.translated.document["patient"]["id"] == "P-0042" and one_.errors == {}
    assert set(two.errors) == {"PID[2]-3", "PID[2]-7"}
    assert two.translated.paths["patient.id"] == "PID[2]-3"
    assert two.translated.paths["results.0.unit"] == "OBX[2]-6"


def test_an_ar_answers_the_trigger_event_it_was_sent() -> None:
    data = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|CTL-1|P|2.4\r"
    with pytest.raises(Unprocessable) as raised:
        parse(data)
    assert raised.value.header is not None
    ack = parse_ack(build_ack(raised.value.header, "AR", raised.value.text))
    assert (ack.code, ack.control_id) == ("AR", "CTL-1")
    assert ack.message.children[0].msh_9.to_er7() == "ACK^A01^ACK"
