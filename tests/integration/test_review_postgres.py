"""The review queue's state on PostgreSQL: set by the worker's statements with the
interpretation, cleared by a review, set again by a changed interpretation."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from labinterp.services.accounts import create_clinic, create_token
from labinterp.services.interpretation import interpret_panels
from tests.api.conftest import auth, clinic_app
from tests.integration.services import fresh_postgres_database

pytestmark = pytest.mark.postgres


def _panel(value: float) -> dict[str, Any]:
    return {
        "accession": "K-1",
        "patient": {"id": "P-1", "sex": "female", "age_years": 40},
        "collected_at": "2026-11-01T08:00:00Z",
        "results": [{"analyte": "potassium", "value": value, "unit": "mmol/L"}],
    }


def test_a_review_and_a_changed_interpretation_move_a_panel_through_the_queue(
    tmp_path: Path,
) -> None:
    with fresh_postgres_database("labinterp_review") as url:
        runtime, client, token = clinic_app(
            {
                "LABINTERP_INSTANCE": str(tmp_path / "instance"),
                "DATABASE_URL": url,
                "LABINTERP_RATE_LIMIT": "0",
            }
        )
        with runtime.session_factory() as session:
            clinician = create_token(session, "clinician", ["c"]).token
            create_clinic(session, "other")

        def work(panel_id: str) -> None:
            interpret_panels(
                runtime.engine, runtime.rulesets, [uuid.UUID(panel_id)], max_attempts=3
            )

        def pending() -> list[dict[str, Any]]:
            page = client.get("/api/v1/review-queue", headers=auth(clinician)).get_json()
            return list(page["items"])

        posted = client.post("/api/v1/panels", json=_panel(3.2), headers=auth(token))
        panel_id = posted.get_json()["id"]
        work(panel_id)
        [item] = pending()
        assert item["priority"] == "routine" and item["finding_codes"] == ["hypokalemia"]
        reviewed = client.post(
            f"/api/v1/panels/{panel_id}/reviews",
            json={"decision": "acknowledged", "interpretation_id": item["interpretation_id"]},
            headers=auth(clinician),
        )
        assert reviewed.status_code == 201, reviewed.get_json()
        assert pending() == []
        for value, back in ((3.3, False), (2.4, True)):  # the same finding; then critical
            revised = client.post(
                f"/api/v1/panels/{panel_id}/revisions", json=_panel(value), headers=auth(token)
            )
            assert revised.status_code == 202
            work(panel_id)
            assert [i["priority"] for i in pending()] == (["critical"] if back else [])
        runtime.engine.dispose()
