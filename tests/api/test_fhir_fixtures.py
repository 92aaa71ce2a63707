"""Every FHIR file of ../shared/fixtures/fhir/ (real lab output and specification examples)
posted to /fhir/r4/Bundle: it becomes a correctly interpreted panel, or the answer says
precisely why not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.conftest import Tokens, auth
from tests.api.test_fhir_intake import by_analyte, interpreted, issues_of, post
from tests.integration.worker_process import REPO

FIXTURES = REPO.parent / "shared" / "fixtures" / "fhir"  # shared/ lies beside the checkout


def fixture(name: str) -> bytes:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return path.read_bytes()


def accepted(client: FlaskClient, tokens: Tokens, work: Any, name: str) -> tuple[Any, Any]:
    response = post(client, tokens.clinic, fixture(name))
    assert response.status_code == 201, response.get_data(as_text=True)[:1500]
    body = response.get_json()
    return body, interpreted(client, tokens.clinic, work, body["id"])


def flags(panel: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """analyte -> (our flag, the sender's)."""
    return {
        r["analyte"]: (r["interpretation"], r.get("sender_flag"))
        for r in panel["interpretation"]["results"]
    }


def kept(body: dict[str, Any]) -> dict[str, str]:
    return {n["code"]: n["reason"] for n in body["not_interpreted"]}


def test_macsys_potassium_8_5_is_critical_and_calcium_2_55_high_as_the_lab_flags_them(
    client: FlaskClient, tokens: Tokens, work: Any
) -> None:
    body, panel = accepted(client, tokens, work, "be-macsys-815333046_5-K-HH-Ca-H.json")
    assert body["accession"] == "815333046"  # DiagnosticReport.identifier[0].value
    assert panel["patient"]["sex"] == "unknown"  # Patient.gender other
    assert flags(panel) == {"sodium": ("N", None), "potassium": ("HH", "HH"), "calcium": ("H", "H")}
    assert panel["interpretation"]["priority"] == "critical"
    assert {f["code"] for f in panel["interpretation"]["findings"]} == {
        "hyperkalemia",
        "hypercalcemia",
    }
    assert "718-7" in kept(body)  # the blood count is kept, not judged


def test_macsys_erythrocyte_magnesium_is_not_serum_magnesium(
    client: FlaskClient, tokens: Tokens, work: Any
) -> None:
    body, panel = accepted(client, tokens, work, "be-macsys-815333055_4-Mg-phosphate-H.json")
    assert flags(panel)["magnesium"] == ("N", None)  # 2601-3 0.89 mmol/L
    assert str(by_analyte(panel["results"])["magnesium"]["reported"]["value"]) == "0.89"
    assert flags(panel)["phosphate"] == ("H", "H")
    assert "erythrocyte magnesium" in kept(body)["2593-2"]
    # the Patient's birthDate 0001-01-01 is a placeholder: read as unknown, and said so
    assert panel["patient"]["birth_date"] is None
    assert "placeholder" in kept(body)[""]
    assert "age_unknown" in {n["code"] for n in panel["interpretation"]["notes"]}


def test_macsys_electrophoresis_albumin_is_no_albumin_result_so_no_panel(
    client: FlaskClient, tokens: Tokens
) -> None:
    issues = issues_of(
        post(client, tokens.clinic, fixture("be-macsys-815333058_2-albumin-L.json")), 422
    )
    [(where, why)] = issues.items()
    assert where == "Bundle.entry[25].resource.result"
    assert "no Observation here is a serum or plasma result of an analyte" in why
    assert "2862-1: albumin measured by serum protein electrophoresis" in why
    assert "13980-8: albumin as a percentage of total protein" in why


def test_uzg_sodium_115_potassium_7_calcium_2_1_and_a_mass_coded_magnesium_in_mmol(
    client: FlaskClient, tokens: Tokens, work: Any
) -> None:
    """Whole-blood potassium (6298-4) is judged as potassium; magnesium coded 19123-9 (mass)
    but sent in mmol/L is read in its unit, and the mismatch noted; the phosphate registered
    with a range and no value is named, not judged."""
    body, panel = accepted(
        client, tokens, work, "be-uzg-scenario2_1-bundle-Na-LL-Ca-L-Mg-massLOINC-molarunit.json"
    )
    assert flags(panel) == {
        "sodium": ("LL", "LL"),
        "potassium": ("HH", "HH"),
        "calcium": ("L", "L"),
        "magnesium": ("N", None),
    }
    assert panel["collected_at"] == "2022-04-06T12:18:37Z"
    judged = by_analyte(panel["interpretation"]["results"])
    assert (judged["magnesium"]["value"], judged["magnesium"]["unit"]) == (1, "mmol/L")
    assert "loinc_unit_mismatch" in {n["code"] for n in panel["interpretation"]["notes"]}
    assert "a reference range but no value" in kept(body)["2777-1"]
    assert panel["interpretation"]["priority"] == "critical"


def test_uzg_vitamin_d_15_ng_ml_with_a_seasonal_text_range_is_judged_by_the_ruleset(
    client: FlaskClient, tokens: Tokens, work: Any
) -> None:
    body, panel = accepted(
        client, tokens, work, "be-uzg-scenario2_2-bundle-vitD-seasonal-textrange.json"
    )
    vitamin_d = by_analyte(panel["results"])["vitamin_d_25oh"]
    assert vitamin_d["reference_range"]["text"].startswith("Winter: 10 - 37.4")
    judged = by_analyte(panel["interpretation"]["results"])["vitamin_d_25oh"]
    assert (judged["interpretation"], judged["reference_range"]["source"]) == ("L", "ruleset")
    assert "vitamin_d_insufficiency" in {f["code"] for f in panel["interpretation"]["findings"]}
    assert "given only as text" in kept(body)["1989-3"]


def test_the_r5_general_health_panel_is_refused_for_its_creatinine_unit(
    client: FlaskClient, tokens: Tokens
) -> None:
    """The specification's R5 example: its Specimens hold an R5 element (skipped, with a
    warning), its Patient is only referenced, and creatinine comes in mmol/L, which ruleset
    2026.1 does not list for creatinine: the answer names that element."""
    issues = issues_of(
        post(client, tokens.clinic, fixture("fhirspec-r5-Bundle-ghp-general-health-panel.json")),
        422,
    )
    assert issues == {
        "Bundle.entry[30].resource.valueQuantity.unit": (
            "unit 'mmol/L' is not valid for creatinine; use umol/L or mg/dL"
        )
    }


@pytest.mark.parametrize(
    "name",
    [
        "uscore-observation-serum-calcium.json",
        "uscore-observation-serum-potassium.json",
        "uscore-observation-serum-sodium.json",
        "fhirspec-r5-Observation-f204-creatinine-snomed-interp.json",
    ],
)
def test_a_lone_observation_has_no_accession(
    client: FlaskClient, tokens: Tokens, name: str
) -> None:
    issues = issues_of(post(client, tokens.clinic, fixture(name)), 422)
    assert "a lone Observation has no accession" in issues["Observation.identifier"]


def test_the_us_core_report_names_each_observation_it_does_not_contain(
    client: FlaskClient, tokens: Tokens
) -> None:
    issues = issues_of(
        post(client, tokens.clinic, fixture("uscore-diagnosticreport-metabolic-panel.json")), 422
    )
    missing = {k: v for k, v in issues.items() if k.startswith("DiagnosticReport.result[")}
    assert len(missing) == 8
    assert missing["DiagnosticReport.result[0]"].startswith(
        "Observation/serum-sodium is not in this document"
    )
    assert (
        "neither DiagnosticReport.identifier[0].value nor" in issues["DiagnosticReport.identifier"]
    )


def test_every_fixture_file_is_covered_here() -> None:
    """A new fixture file gets its own test above."""
    source = Path(__file__).read_text()
    names = sorted(p.name for p in FIXTURES.glob("*.json"))
    assert names and all(name in source for name in names), names
    assert auth  # the helpers above post with a clinic token
