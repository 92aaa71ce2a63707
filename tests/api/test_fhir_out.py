"""GET /fhir/r4/DiagnosticReport/{panel id} and /fhir/r4/metadata, read back with
fhir.resources (R4B) as an EHR would: codes, ranges, quantities, conclusion, access rules."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from flask.testing import FlaskClient

from labinterp.interop.fhir_out import (
    ANALYTE_SYSTEM,
    FINDING_SYSTEM,
    REPORTED_QUANTITY,
    SENDER_INTERPRETATION,
    V3_INTERPRETATION,
)
from tests.api.conftest import Tokens, auth, sample_panel

FHIR = "application/fhir+json"
UCUM = "http://unitsofmeasure.org"


def post(client: FlaskClient, token: str, body: dict[str, Any]) -> str:
    response = client.post("/api/v1/panels", json=body, headers=auth(token))
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["id"])


def report(client: FlaskClient, token: str, panel_id: str) -> DiagnosticReport:
    response = client.get(f"/fhir/r4/DiagnosticReport/{panel_id}", headers=auth(token))
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == FHIR
    return DiagnosticReport.model_validate_json(response.get_data())


def observations(dr: DiagnosticReport) -> dict[str, Observation]:
    """The contained Observations by analyte key, each one referenced from result."""
    refs = {r.reference for r in dr.result or []}
    out = {}
    for resource in dr.contained or []:
        assert isinstance(resource, Observation)
        assert f"#{resource.id}" in refs
        analyte = next(c.code for c in resource.code.coding if c.system == ANALYTE_SYSTEM)
        out[analyte] = resource
    return out


def flag(obs: Observation) -> str:
    (concept,) = obs.interpretation
    (coding,) = concept.coding
    assert coding.system == V3_INTERPRETATION
    return str(coding.code)


def loinc(obs: Observation) -> str:
    return next(str(c.code) for c in obs.code.coding if c.system == "http://loinc.org")


def quantity(q: Any) -> tuple[Decimal, str, str | None]:
    return Decimal(str(q.value)), q.unit, q.code


def reported(obs: Observation) -> tuple[Decimal, str, str | None]:
    (ext,) = [e for e in obs.extension if e.url == REPORTED_QUANTITY]
    return quantity(ext.valueQuantity)


@pytest.fixture
def mixed(client: FlaskClient, tokens: Tokens, work: Any) -> str:
    """API.md's panel (low magnesium, B12 with the lab's own range) plus a critical potassium
    and a normal sodium, sent at +01:00, interpreted."""
    body = sample_panel(collected_at="2026-11-20T08:30:00+01:00")
    body["results"][1] = {"loinc": "2823-3", "value": 6.8, "unit": "mmol/L"}  # potassium HH
    body["results"].append({"analyte": "sodium", "value": 140, "unit": "mEq/L"})
    panel_id = post(client, tokens.clinic, body)
    work(panel_id)
    return panel_id


def test_an_interpreted_panel_is_a_final_report_with_each_result_judged(
    client: FlaskClient, tokens: Tokens, mixed: str
) -> None:
    dr = report(client, tokens.clinic, mixed)
    assert dr.id == mixed and dr.status == "final"
    assert dr.subject.identifier.value == "P-0042"
    assert dr.effectiveDateTime.isoformat() == "2026-11-20T08:30:00+01:00"  # the sent offset
    assert dr.issued is not None
    assert [i.value for i in dr.identifier if i.type is not None] == ["LAB-2026-000123"]
    obs = observations(dr)
    assert set(obs) == {
        "magnesium",
        "potassium",
        "calcium",
        "albumin",
        "vitamin_d_25oh",
        "vitamin_b12",
        "sodium",
    }
    assert {a: flag(o) for a, o in obs.items()} == {
        "magnesium": "L",
        "potassium": "HH",  # 6.8 mmol/L: above the critical limit
        "calcium": "L",
        "albumin": "L",
        "vitamin_d_25oh": "L",
        "vitamin_b12": "L",
        "sodium": "N",
    }
    mg = obs["magnesium"]
    assert quantity(mg.valueQuantity) == (Decimal("0.45"), "mmol/L", "mmol/L")
    assert mg.valueQuantity.system == UCUM
    assert reported(mg) == (Decimal("1.1"), "mg/dL", "mg/dL")  # as the lab sent it
    assert loinc(mg) == "2601-3"  # Magnesium [Moles/volume], the canonical value's kind
    assert loinc(obs["potassium"]) == "2823-3"  # the code the clinic sent
    assert reported(obs["sodium"]) == (Decimal("140"), "mEq/L", "meq/L")  # UCUM's code
    assert all(
        o.status == "final" and o.effectiveDateTime == dr.effectiveDateTime for o in obs.values()
    )


def test_the_reference_range_is_the_one_used_and_says_whose(
    client: FlaskClient, tokens: Tokens, mixed: str
) -> None:
    obs = observations(report(client, tokens.clinic, mixed))
    (ruleset_range,) = obs["magnesium"].referenceRange
    assert quantity(ruleset_range.low)[:2] == (Decimal("0.7"), "mmol/L")
    assert quantity(ruleset_range.high)[:2] == (Decimal("1.1"), "mmol/L")
    assert ruleset_range.text == "labinterp ruleset 2026.1 reference interval"
    (lab_range,) = obs["vitamin_b12"].referenceRange  # the lab's 200-900 pg/mL, as sent
    assert quantity(lab_range.low) == (Decimal("200"), "pg/mL", "pg/mL")
    assert quantity(lab_range.high) == (Decimal("900"), "pg/mL", "pg/mL")
    assert lab_range.text == "the performing laboratory's reference range"


def test_the_conclusion_names_every_finding_with_a_labinterp_code(
    client: FlaskClient, tokens: Tokens, mixed: str
) -> None:
    dr = report(client, tokens.clinic, mixed)
    panel = client.get(f"/api/v1/panels/{mixed}", headers=auth(tokens.clinic)).get_json()
    findings = [f["code"] for f in panel["interpretation"]["findings"]]
    assert {"hypomagnesemia", "hyperkalemia", "b12_borderline"} <= set(findings)
    codes = [
        c.code
        for concept in dr.conclusionCode
        for c in concept.coding
        if c.system == FINDING_SYSTEM
    ]
    assert codes == findings
    assert dr.conclusion == panel["interpretation"]["summary"]


def test_critical_low_unjudgeable_and_a_lab_range_normal(
    client: FlaskClient, tokens: Tokens, work: Any
) -> None:
    body = sample_panel(accession="LAB-2", context=None)
    body["results"] = [
        {"analyte": "potassium", "value": 2.4, "unit": "mmol/L"},
        {"analyte": "creatinine", "value": 80, "unit": "umol/L"},  # no interval: IND
        {"analyte": "magnesium", "value": 0.8, "unit": "10*-3.mol/L",
         "reference_range": {"low": 0.66, "high": 1.07}},
    ]  # fmt: skip
    panel_id = post(client, tokens.clinic, body)
    work(panel_id)
    obs = observations(report(client, tokens.clinic, panel_id))
    assert {a: flag(o) for a, o in obs.items()} == {
        "potassium": "LL",
        "creatinine": "IND",
        "magnesium": "N",
    }
    assert obs["creatinine"].referenceRange is None
    (lab,) = obs["magnesium"].referenceRange
    assert quantity(lab.low) == (Decimal("0.66"), "10*-3.mol/L", "10*-3.mol/L")
    assert "laboratory" in lab.text
    assert reported(obs["magnesium"]) == (Decimal("0.8"), "10*-3.mol/L", "10*-3.mol/L")


def test_the_senders_flag_is_shown_beside_ours(
    client: FlaskClient, tokens: Tokens, work: Any
) -> None:
    """Sodium 138 flagged L by its lab inside the lab's own 136-145 (a real lab report): ours
    says N, the sender's L is kept beside it, never as ours."""
    body = sample_panel(accession="LAB-3", context=None)
    body["results"] = [
        {"analyte": "sodium", "value": 138, "unit": "mmol/L", "sender_flag": "L",
         "reference_range": {"low": 136, "high": 145}},
        {"analyte": "potassium", "value": 4.1, "unit": "mmol/L"},
    ]  # fmt: skip
    panel_id = post(client, tokens.clinic, body)
    work(panel_id)
    obs = observations(report(client, tokens.clinic, panel_id))
    assert flag(obs["sodium"]) == "N"
    (sender,) = [e for e in obs["sodium"].extension if e.url == SENDER_INTERPRETATION]
    assert sender.valueCodeableConcept.text == "L"
    assert [(c.system, c.code) for c in sender.valueCodeableConcept.coding] == [
        (V3_INTERPRETATION, "L")
    ]
    assert not [e for e in obs["potassium"].extension if e.url == SENDER_INTERPRETATION]


def test_a_queued_panel_is_registered_without_interpretation(
    client: FlaskClient, tokens: Tokens
) -> None:
    panel_id = post(client, tokens.clinic, sample_panel())
    dr = report(client, tokens.clinic, panel_id)
    assert dr.status == "registered"
    assert dr.conclusion is None and dr.conclusionCode is None
    obs = observations(dr)
    assert all(o.interpretation is None and o.status == "registered" for o in obs.values())
    (lab,) = obs["vitamin_b12"].referenceRange  # the lab's own range, already known
    assert quantity(lab.low)[:2] == (Decimal("200"), "pg/mL")


def outcome(response: Any, status: int) -> OperationOutcome:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == FHIR
    return OperationOutcome.model_validate_json(response.get_data())


def test_the_same_clinic_rules_as_the_json_api(
    client: FlaskClient, tokens: Tokens, mixed: str
) -> None:
    url = f"/fhir/r4/DiagnosticReport/{mixed}"
    assert report(client, tokens.clinician, mixed).id == mixed  # the clinic's clinician
    assert report(client, tokens.admin, mixed).id == mixed
    other = outcome(client.get(url, headers=auth(tokens.other_clinic)), 404)
    missing = outcome(
        client.get(f"/fhir/r4/DiagnosticReport/{uuid.uuid4()}", headers=auth(tokens.clinic)), 404
    )
    assert other.issue[0].code == missing.issue[0].code == "not-found"
    assert other.issue[0].diagnostics == missing.issue[0].diagnostics  # nothing told apart
    anonymous = client.get(url)
    assert outcome(anonymous, 401).issue[0].code == "login"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert outcome(client.get(url, headers=auth("li_not-a-token")), 401).issue


def test_metadata_is_a_capability_statement_anyone_may_read(client: FlaskClient) -> None:
    response = client.get("/fhir/r4/metadata")
    assert response.status_code == 200 and response.mimetype == FHIR
    statement = CapabilityStatement.model_validate_json(response.get_data())
    assert statement.fhirVersion == "4.0.1" and statement.kind == "instance"
    (rest,) = statement.rest
    read = {r.type: [i.code for i in r.interaction] for r in rest.resource}
    assert read["DiagnosticReport"] == ["read"]
