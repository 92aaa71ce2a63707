"""FHIR R4 in: POST /fhir/r4/Bundle. Bundles built with fhir.resources go in over HTTP and come
back out as panels and interpretations; errors are OperationOutcomes naming FHIRPaths."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.observation import Observation, ObservationReferenceRange
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference
from flask.testing import FlaskClient
from sqlalchemy import select

from labinterp.models import PanelRevision
from labinterp.runtime import Runtime
from tests.api.conftest import Tokens, assert_problem, auth, postgres_clinic_app

FHIR = "application/fhir+json"
V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
COLLECTED = "2026-11-20T08:30:00+01:00"


def quantity(value: str, unit: str) -> Quantity:
    return Quantity(value=Decimal(value), unit=unit, system="http://unitsofmeasure.org", code=unit)


def observation(
    oid: str,
    loinc: str,
    value: str | None,
    unit: str = "mmol/L",
    *,
    low: str | None = None,
    high: str | None = None,
    flag: str | None = None,
    **extra: Any,
) -> Observation:
    return Observation(
        id=oid,
        status="final",
        code=CodeableConcept(coding=[Coding(system="http://loinc.org", code=loinc)]),
        subject=Reference(reference="Patient/p1"),
        valueQuantity=extra.pop("valueQuantity", None) if value is None else quantity(value, unit),
        referenceRange=None
        if low is None and high is None
        else [
            ObservationReferenceRange(
                low=None if low is None else quantity(low, unit),
                high=None if high is None else quantity(high, unit),
            )
        ],
        interpretation=None
        if flag is None
        else [CodeableConcept(coding=[Coding(system=V3, code=flag)])],
        **extra,
    )


def lab_report(
    *observations: Observation, accession: str = "ACC-FHIR-1", with_report: bool = True
) -> Bundle:
    """A collection Bundle: the patient, a DiagnosticReport (the accession, the collection
    time) and the Observations, each referenced as Type/id."""
    patient = Patient(
        id="p1",
        identifier=[Identifier(system="urn:clinic:mrn", value="MRN-0042")],
        gender="female",
        birthDate=dt.date(1984, 3, 9),
    )
    entries = [BundleEntry(fullUrl="urn:uuid:patient-p1", resource=patient)]
    if with_report:
        report = DiagnosticReport(
            id="r1",
            identifier=[Identifier(value=accession)],
            status="final",
            code=CodeableConcept(text="electrolytes"),
            subject=Reference(reference="Patient/p1"),
            effectiveDateTime=COLLECTED,
            result=[Reference(reference=f"Observation/{o.id}") for o in observations],
        )
        entries.append(BundleEntry(resource=report))
    entries += [BundleEntry(resource=o) for o in observations]
    return Bundle(
        type="collection",
        identifier=None if with_report else Identifier(value=accession),
        entry=entries,
    )


def post(client: FlaskClient, token: str, body: Bundle | dict[str, Any] | bytes | str) -> Any:
    if isinstance(body, Bundle):
        data: bytes | str = body.model_dump_json(exclude_none=True)
    elif isinstance(body, dict):
        import json

        data = json.dumps(body)
    else:
        data = body
    return client.post("/fhir/r4/Bundle", data=data, headers={**auth(token), "Content-Type": FHIR})


def issues_of(response: Any, status: int) -> dict[str, str]:
    """The OperationOutcome answered (valid R4, by fhir.resources): {expression: diagnostics}."""
    assert response.status_code == status, response.get_data(as_text=True)[:800]
    assert response.mimetype == FHIR
    outcome = OperationOutcome.model_validate(response.get_json())
    return {(i.expression or [""])[0]: i.diagnostics or "" for i in outcome.issue}


def interpreted(client: FlaskClient, token: str, work: Any, panel_id: str) -> dict[str, Any]:
    work(panel_id)
    panel = client.get(f"/api/v1/panels/{panel_id}", headers=auth(token)).get_json()
    assert panel["status"] == "interpreted", panel
    return panel


def by_analyte(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["analyte"]: i for i in items}


# --- round trips -------------------------------------------------------------------------------


def test_a_bundle_becomes_a_panel_and_the_senders_contradicting_flag_is_shown_beside_ours(
    client: FlaskClient, tokens: Tokens, work: Any
) -> None:
    """Sodium 138 flagged L by a laboratory whose own range is 136-145: we judge it N, and the
    interpretation says the two disagree; potassium 2.9 flagged L agrees."""
    bundle = lab_report(
        observation("na", "2951-2", "138", low="136", high="145", flag="L"),
        observation("k", "2823-3", "2.9", low="3.5", high="5.1", flag="L"),
        observation("mg", "19123-9", "1.1", "mg/dL"),
    )
    response = post(client, tokens.clinic, bundle)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/panels/{body['id']}"
    assert (body["accession"], body["status"], body["not_interpreted"]) == (
        "ACC-FHIR-1",
        "queued",
        [],
    )
    panel = interpreted(client, tokens.clinic, work, body["id"])
    assert panel["patient"] == {
        "id": "MRN-0042",
        "sex": "female",
        "birth_date": "1984-03-09",
        "age_years": None,
    }
    assert panel["collected_at"] == "2026-11-20T07:30:00Z"
    sent = by_analyte(panel["results"])
    assert (sent["sodium"]["sender_flag"], sent["magnesium"]["sender_flag"]) == ("L", None)
    assert sent["magnesium"]["reported"] == {"value": Decimal("1.1"), "unit": "mg/dL"}
    judged = by_analyte(panel["interpretation"]["results"])
    assert judged["sodium"]["interpretation"] == "N"
    assert (judged["sodium"]["sender_flag"], judged["sodium"]["sender_flag_disagrees"]) == (
        "L",
        True,
    )
    assert (judged["potassium"]["interpretation"], judged["potassium"]["sender_flag"]) == (
        "L",
        "L",
    )
    assert judged["potassium"]["sender_flag_disagrees"] is False
    assert "sender_flag" not in judged["magnesium"]
    notes = [n for n in panel["interpretation"]["notes"] if n["code"] == "sender_flag_disagrees"]
    assert [n["analyte"] for n in notes] == ["sodium"]
    assert "flagged it L" in notes[0]["detail"] and "136" in notes[0]["detail"]
    assert {f["code"] for f in panel["interpretation"]["findings"]} >= {
        "hypokalemia",
        "hypomagnesemia",
    }


def test_the_same_bundle_again_is_a_repeat_and_a_changed_one_a_conflict(
    client: FlaskClient, tokens: Tokens
) -> None:
    bundle = lab_report(observation("k", "2823-3", "4.1"))
    first = post(client, tokens.clinic, bundle)
    assert first.status_code == 201
    again = post(client, tokens.clinic, bundle)
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["status"] == "repeat"
    assert again.headers["Location"] == first.headers["Location"]
    changed = lab_report(observation("k", "2823-3", "4.2"))
    issues = issues_of(post(client, tokens.clinic, changed), 409)
    assert "results[2823-3].value differ" in issues["Bundle"]
    assert first.get_json()["id"] in issues["Bundle"]


def test_members_of_a_panel_observation_and_contained_resources_are_followed(
    client: FlaskClient, tokens: Tokens, work: Any
) -> None:
    """A DiagnosticReport holding its Observations as contained resources, one of them a panel
    (hasMember) of two more; the Bundle carries no other entry but the Patient."""
    calcium = observation("ca", "17861-6", "7.7", "mg/dL", low="8.5", high="10.5", flag="L")
    albumin = observation("alb", "1751-7", "4.0", "g/dL")
    grouper = Observation(
        id="grp",
        status="final",
        code=CodeableConcept(coding=[Coding(system="http://loinc.org", code="24323-8")]),
        hasMember=[Reference(reference="#ca"), Reference(reference="#alb")],
    )
    report = DiagnosticReport(
        id="r1",
        identifier=[Identifier(value="ACC-CONTAINED")],
        status="final",
        code=CodeableConcept(text="calcium"),
        subject=Reference(reference="Patient/p1"),
        effectiveDateTime=COLLECTED,
        contained=[grouper, calcium, albumin],
        result=[Reference(reference="#grp")],
    )
    bundle = lab_report(with_report=False)
    bundle.entry.append(BundleEntry(resource=report))  # type: ignore[union-attr]
    response = post(client, tokens.clinic, bundle)
    assert response.status_code == 201, response.get_json()
    panel = interpreted(client, tokens.clinic, work, response.get_json()["id"])
    assert set(by_analyte(panel["results"])) == {"calcium", "albumin"}
    assert by_analyte(panel["interpretation"]["results"])["calcium"]["sender_flag"] == "L"


def test_without_a_report_the_bundle_identifier_is_the_accession_and_times_must_agree(
    client: FlaskClient, tokens: Tokens
) -> None:
    same = lab_report(
        observation("k", "2823-3", "4.1", effectiveDateTime=COLLECTED),
        observation("na", "2951-2", "140", effectiveDateTime="2026-11-20T07:30:00Z"),
        accession="BUNDLE-ID-1",
        with_report=False,
    )
    response = post(client, tokens.clinic, same)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["accession"] == "BUNDLE-ID-1"
    apart = lab_report(
        observation("k", "2823-3", "4.1", effectiveDateTime=COLLECTED),
        observation("na", "2951-2", "140", effectiveDateTime="2026-11-21T08:30:00+01:00"),
        accession="BUNDLE-ID-2",
        with_report=False,
    )
    issues = issues_of(post(client, tokens.clinic, apart), 422)
    assert "collected at different times" in issues["Bundle.entry[1].resource.effectiveDateTime"]


def test_observations_that_are_not_our_serum_analytes_are_kept_and_named(
    client: FlaskClient, tokens: Tokens, runtime: Runtime
) -> None:
    """Erythrocyte magnesium, electrophoresis albumin, a censored value, a text value and a
    result with a range and no value are not mistaken for ours: kept and named."""
    bundle = lab_report(
        observation("mg", "2601-3", "0.89"),
        observation("rbc-mg", "2593-2", "2.45"),
        observation("ep-alb", "2862-1", "30.5", "g/L"),
        observation("ep-pct", "13980-8", "52.5", "%"),
        observation("k-lt", "2823-3", None, valueQuantity=Quantity(value=1, comparator="<")),
        observation("na-text", "2951-2", None, valueString="haemolysed"),
        observation("phos", "2777-1", None, low="0.8", high="1.45"),
    )
    response = post(client, tokens.clinic, bundle)
    assert response.status_code == 201, response.get_json()
    kept = {n["code"]: n for n in response.get_json()["not_interpreted"]}
    assert set(kept) == {"2593-2", "2862-1", "13980-8", "2823-3", "2951-2", "2777-1"}
    assert "erythrocyte magnesium" in kept["2593-2"]["reason"]
    assert "electrophoresis" in kept["2862-1"]["reason"]
    assert "percentage" in kept["13980-8"]["reason"]
    assert "censored value <1" in kept["2823-3"]["reason"]
    assert "text 'haemolysed'" in kept["2951-2"]["reason"]
    assert "a reference range but no value" in kept["2777-1"]["reason"]
    assert kept["2593-2"]["path"] == "Bundle.entry[3].resource"
    with runtime.session_factory() as session:
        revision = session.scalars(select(PanelRevision)).one()
        assert revision.source_format == "fhir"
        assert revision.not_interpreted == response.get_json()["not_interpreted"]
        assert revision.source_document == bundle.model_dump_json(exclude_none=True)


# --- errors ------------------------------------------------------------------------------------


def test_a_field_error_names_the_fhirpath_of_the_element_sent(
    client: FlaskClient, tokens: Tokens
) -> None:
    bundle = lab_report(
        observation("na", "2951-2", "140"),
        observation("k", "2823-3", "4.1", "mg/dL"),
    )
    issues = issues_of(post(client, tokens.clinic, bundle), 422)
    assert list(issues) == ["Bundle.entry[3].resource.valueQuantity.code"]
    assert (
        "'mg/dL' is not valid for potassium"
        in issues["Bundle.entry[3].resource.valueQuantity.code"]
    )


def test_an_element_fhir_r4_does_not_have_is_named_where_it_is(
    client: FlaskClient, tokens: Tokens
) -> None:
    document = lab_report(observation("na", "2951-2", "140")).model_dump(
        mode="json", exclude_none=True
    )
    document["entry"][2]["resource"]["valueQuantity"]["value"] = "a lot"
    document["entry"][1]["resource"]["effectiveDateTime"] = "2026-11-20T08:30:00"
    issues = issues_of(post(client, tokens.clinic, document), 422)
    assert set(issues) == {
        "Bundle.entry[2].resource.valueQuantity.value",
        "Bundle.entry[1].resource.effectiveDateTime",
    }
    assert "needs its UTC offset" in issues["Bundle.entry[1].resource.effectiveDateTime"]


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        (b"{not json", "Bundle"),
        (b"[1, 2]", "Bundle"),
        (b'{"resourceType": "Patient", "id": "x"}', "resourceType"),
    ],
)
def test_what_is_not_a_fhir_bundle_is_a_400_operation_outcome(
    client: FlaskClient, tokens: Tokens, body: bytes, expression: str
) -> None:
    assert list(issues_of(post(client, tokens.clinic, body), 400)) == [expression]


def test_a_bundle_of_another_type_is_refused_by_name(client: FlaskClient, tokens: Tokens) -> None:
    document = lab_report(observation("na", "2951-2", "140")).model_dump(
        mode="json", exclude_none=True
    )
    document["type"] = "searchset"
    issues = issues_of(post(client, tokens.clinic, document), 422)
    assert "'searchset' Bundle is not taken here" in issues["Bundle.type"]


def test_content_type_size_and_role_are_checked_as_for_every_post(
    client: FlaskClient, tokens: Tokens
) -> None:
    body = lab_report(observation("na", "2951-2", "140")).model_dump_json(exclude_none=True)
    plain = client.post(
        "/fhir/r4/Bundle",
        data=body,
        headers={**auth(tokens.clinic), "Content-Type": "text/plain"},
    )
    assert "application/fhir+json" in assert_problem(plain, 415)["detail"]
    as_clinician = client.post(
        "/fhir/r4/Bundle", data=body, headers={**auth(tokens.clinician), "Content-Type": FHIR}
    )
    assert_problem(as_clinician, 403)
    anonymous = client.post("/fhir/r4/Bundle", data=body, headers={"Content-Type": FHIR})
    assert_problem(anonymous, 401)


@pytest.mark.postgres
def test_a_bundle_round_trip_on_postgresql(tmp_path: Path) -> None:
    """The one-statement insert of PostgreSQL stores what the Bundle held; a repeat is a 200."""
    with postgres_clinic_app(tmp_path) as (runtime, client, token):
        bundle = lab_report(
            observation("na", "2951-2", "138", low="136", high="145", flag="L"),
            observation("rbc-mg", "2593-2", "2.45"),
        )
        first = post(client, token, bundle)
        assert first.status_code == 201, first.get_json()
        assert post(client, token, bundle).status_code == 200
        panel = client.get(first.headers["Location"], headers=auth(token)).get_json()
        assert [(r["analyte"], r["sender_flag"]) for r in panel["results"]] == [("sodium", "L")]
        with runtime.session_factory() as session:
            revision = session.scalars(select(PanelRevision)).one()
            assert revision.source_format == "fhir"
            assert [n["code"] for n in revision.not_interpreted or []] == ["2593-2"]


PATIENT = {"resourceType": "Patient", "id": "p1", "identifier": [{"value": "MRN-1"}]}


def _k(oid: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": COLLECTED,
        **fields,
    }


def _bundle(*resources: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "identifier": {"value": "ODD-1"},
        "entry": [{"resource": r} for r in (PATIENT, *resources)],
        **fields,
    }


@pytest.mark.parametrize(
    ("document", "expression", "words"),
    [
        ({**_bundle(), "entry": "x"}, "Bundle.entry", "valid list"),
        (_bundle({"resourceType": "Nope"}), "Bundle.entry[1].resource.resourceType", "Nope"),
        (
            _bundle(
                _k("a", hasMember=[{"reference": "Observation/b"}]),
                _k("b", hasMember=[{"reference": "Observation/a"}]),
            ),
            "Bundle",
            "no Observation here",
        ),
        (
            _bundle(
                _k("a", valueQuantity={"value": 4.1, "unit": "mmol/L"}),
                _k(
                    "b",
                    subject={"reference": "Patient/other"},
                    valueQuantity={"value": 4.0, "unit": "mmol/L"},
                ),
            ),
            "Bundle",
            "more than one patient",
        ),
        (
            _bundle(
                _k(
                    "a",
                    valueQuantity={"value": 4.1, "unit": "mmol/L"},
                    referenceRange=[{"low": {"value": 3.5, "unit": "mg/dL"}}],
                )
            ),
            "Bundle.entry[1].resource.referenceRange[0].low.unit",
            "send the range in the result's unit",
        ),
        (
            _bundle(
                _k(
                    "a",
                    valueQuantity={"value": 4.1, "unit": "mmol/L"},
                    effectiveDateTime="2026-11-20",
                )
            ),
            "Bundle.entry[1].resource.effectiveDateTime",
            "has no time of day",
        ),
        (
            _bundle(_k("a", valueQuantity={"value": 4.1}, effectiveDateTime=COLLECTED)),
            "Bundle.entry[1].resource.valueQuantity.unit",
            "",
        ),
    ],
)
def test_odd_bundles_get_an_operation_outcome_naming_the_place_never_a_500(
    client: FlaskClient, tokens: Tokens, document: dict[str, Any], expression: str, words: str
) -> None:
    issues = issues_of(post(client, tokens.clinic, document), 422)
    assert expression in issues, issues
    assert words in issues[expression]
