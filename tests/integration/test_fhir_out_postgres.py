"""The DiagnosticReport read from PostgreSQL: the offset the collection time was sent with,
quantities exact as numeric, the lab's range, a UCUM unit spelling, and the clinic rule."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation

from labinterp.services.accounts import create_clinic, create_token
from labinterp.services.interpretation import interpret_panels
from tests.api.conftest import auth, clinic_app
from tests.integration.services import fresh_postgres_database

pytestmark = pytest.mark.postgres


def test_a_diagnostic_report_from_postgresql(tmp_path: Path) -> None:
    with fresh_postgres_database("labinterp_fhir_out") as url:
        runtime, client, token = clinic_app(
            {
                "LABINTERP_INSTANCE": str(tmp_path / "instance"),
                "DATABASE_URL": url,
                "LABINTERP_RATE_LIMIT": "0",
            }
        )
        with runtime.session_factory() as session:
            create_clinic(session, "other")
            other = create_token(session, "clinic", ["other"]).token
        body = {
            "accession": "FHIR-PG-1",
            "patient": {"id": "P-7", "sex": "male", "birth_date": "1970-05-01"},
            "collected_at": "2026-11-20T07:45:00+05:30",
            "results": [
                {"analyte": "magnesium", "value": 0.55, "unit": "10*-3.mol/L"},
                {"analyte": "potassium", "value": 3.9, "unit": "mEq/L",
                 "reference_range": {"low": 3.5, "high": 5.0}, "sender_flag": "N"},
            ],
        }  # fmt: skip
        posted = client.post("/api/v1/panels", json=body, headers=auth(token))
        assert posted.status_code == 202, posted.get_json()
        panel_id = posted.get_json()["id"]
        interpret_panels(runtime.engine, runtime.rulesets, [uuid.UUID(panel_id)], max_attempts=3)

        response = client.get(f"/fhir/r4/DiagnosticReport/{panel_id}", headers=auth(token))
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        dr = DiagnosticReport.model_validate_json(response.get_data())
        assert dr.status == "final"
        assert dr.effectiveDateTime.isoformat() == "2026-11-20T07:45:00+05:30"
        mg, k = dr.contained
        assert isinstance(mg, Observation) and isinstance(k, Observation)
        assert mg.interpretation[0].coding[0].code == "L"
        assert Decimal(str(mg.valueQuantity.value)) == Decimal("0.55")
        assert mg.valueQuantity.code == "mmol/L"
        assert k.interpretation[0].coding[0].code == "N"
        assert Decimal(str(k.referenceRange[0].low.value)) == Decimal("3.5")
        assert k.referenceRange[0].low.code == "meq/L"  # the lab's range, in its unit
        assert [c.coding[0].code for c in dr.conclusionCode] == ["hypomagnesemia"]

        hidden = client.get(f"/fhir/r4/DiagnosticReport/{panel_id}", headers=auth(other))
        assert hidden.status_code == 404 and hidden.mimetype == "application/fhir+json"
        runtime.engine.dispose()
