"""The interop seam: a translated document goes the JSON API's way (same acceptance, same
idempotency), its errors name the sender's paths, and what it came as is kept beside it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from labinterp.domain import Ruleset
from labinterp.interop.intake import (
    Translated,
    in_clinic_time,
    iso_in_clinic_time,
    sender_paths,
    submit_translated,
)
from labinterp.models import Clinic, PanelRevision, Result
from labinterp.runtime import Runtime
from labinterp.services.accounts import set_clinic_time_zone
from labinterp.services.audit import Actor
from labinterp.services.errors import AccessionConflict, InvalidInput
from labinterp.services.panels import ClinicRef
from tests.api.conftest import Tokens, auth, postgres_clinic_app, sample_panel

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


def _clinic(runtime: Runtime, name: str = "north") -> ClinicRef:
    with runtime.session_factory() as session:
        clinic = session.scalars(select(Clinic).where(Clinic.name == name)).one()
        return ClinicRef(clinic.id, clinic.name)


def _actor(clinic: ClinicRef) -> Actor:
    return Actor(name="test", role="clinic", clinic_ids=frozenset({clinic.id}))


def _ruleset(runtime: Runtime) -> Ruleset:
    return runtime.rulesets[runtime.settings.default_ruleset]


def _translated(**changes: Any) -> Translated:
    document = {
        "accession": "HL7-1",
        "patient": {"id": "P-1", "sex": "female", "birth_date": "1984-03-09"},
        "collected_at": "2026-11-20T08:30:00+01:00",
        "results": [
            {"loinc": "2951-2", "value": 138, "unit": "mmol/L", "sender_flag": "L",
             "reference_range": {"low": 136, "high": 145}},
            {"loinc": "2823-3", "value": 3.2, "unit": "mmol/L"},
        ],
    }  # fmt: skip
    document.update(changes)
    return Translated(
        document=document,
        paths={"results.0.unit": "OBX[1]-6", "results.1": "OBX[2]", "accession": "OBR-3"},
        not_interpreted=[
            {"path": "OBX[3]", "code": "2593-2", "display": "Mg RBC", "reason": "not serum"}
        ],
        source_format="hl7v2",
        source_text="MSH|^~\\&|...",
    )


def test_a_translated_panel_is_stored_with_its_source_and_the_senders_flag(
    runtime: Runtime, tokens: Tokens, client: FlaskClient
) -> None:
    clinic = _clinic(runtime)
    submitted = submit_translated(
        runtime.engine, _actor(clinic), clinic, _translated(), _ruleset(runtime), NOW
    )
    assert submitted.created
    with runtime.session_factory() as session:
        revision = session.scalars(
            select(PanelRevision).where(PanelRevision.panel_id == submitted.panel_id)
        ).one()
        assert revision.source_format == "hl7v2"
        assert revision.source_document == "MSH|^~\\&|..."
        assert revision.not_interpreted == [
            {"path": "OBX[3]", "code": "2593-2", "display": "Mg RBC", "reason": "not serum"}
        ]
        flags = {
            r.analyte: r.sender_flag
            for r in session.scalars(select(Result).where(Result.revision_id == revision.id))
        }
    assert flags == {"sodium": "L", "potassium": None}
    shown = client.get(f"/api/v1/panels/{submitted.panel_id}", headers=auth(tokens.clinic))
    assert [r["sender_flag"] for r in shown.get_json()["results"]] == ["L", None]


def test_the_same_document_again_is_a_repeat_and_changed_content_a_conflict(
    runtime: Runtime, tokens: Tokens
) -> None:
    clinic = _clinic(runtime)
    first = submit_translated(
        runtime.engine, _actor(clinic), clinic, _translated(), _ruleset(runtime), NOW
    )
    again = submit_translated(
        runtime.engine, _actor(clinic), clinic, _translated(), _ruleset(runtime), NOW
    )
    assert (again.panel_id, again.created) == (first.panel_id, False)
    changed = _translated()
    changed.document["results"][0]["sender_flag"] = "N"  # the sender's flag is content too
    with pytest.raises(AccessionConflict):
        submit_translated(runtime.engine, _actor(clinic), clinic, changed, _ruleset(runtime), NOW)


def test_errors_name_the_senders_paths(runtime: Runtime, tokens: Tokens) -> None:
    """A unit error maps to OBX[1]-6; a value error under results.1 to its segment OBX[2];
    an unmapped path stays the API's."""
    clinic = _clinic(runtime)
    bad = _translated(collected_at="yesterday")
    bad.document["results"][0]["unit"] = "mg/dL"
    bad.document["results"][1]["value"] = -1
    with pytest.raises(InvalidInput) as schema_error:
        submit_translated(runtime.engine, _actor(clinic), clinic, bad, _ruleset(runtime), NOW)
    assert set(schema_error.value.errors) == {"collected_at"}
    bad.document["collected_at"] = "2026-11-20T08:30:00Z"
    with pytest.raises(InvalidInput) as domain_error:
        submit_translated(runtime.engine, _actor(clinic), clinic, bad, _ruleset(runtime), NOW)
    assert set(domain_error.value.errors) == {"OBX[1]-6", "OBX[2]"}
    assert "sodium" in " ".join(domain_error.value.errors["OBX[1]-6"])


def test_sender_paths_merge_messages_that_map_to_one_place() -> None:
    errors = {"results.1.value": ["a"], "results.1.unit": ["b"], "patient.id": ["c"]}
    assert sender_paths(errors, {"results.1": "OBX[2]"}) == {
        "OBX[2]": ["a", "b"],
        "patient.id": ["c"],
    }


def test_a_time_without_offset_is_read_in_the_clinics_zone(
    runtime: Runtime, tokens: Tokens
) -> None:
    """08:30 in Brussels in November is 07:30 UTC; in July 06:30 UTC; an offset sent wins."""
    with runtime.session_factory() as session:
        set_clinic_time_zone(session, "north", "Europe/Brussels")
        assert session.scalars(select(Clinic.time_zone).where(Clinic.name == "north")).one() == (
            "Europe/Brussels"
        )
    assert iso_in_clinic_time(dt.datetime(2026, 11, 20, 8, 30), "Europe/Brussels") == (
        "2026-11-20T08:30:00+01:00"
    )
    assert in_clinic_time(dt.datetime(2026, 7, 20, 8, 30), "Europe/Brussels").astimezone(
        dt.UTC
    ) == dt.datetime(2026, 7, 20, 6, 30, tzinfo=dt.UTC)
    sent = dt.datetime(2026, 7, 20, 8, 30, tzinfo=dt.UTC)
    assert in_clinic_time(sent, "Europe/Brussels") is sent


def test_an_unknown_time_zone_is_refused_by_name(runtime: Runtime, tokens: Tokens) -> None:
    with runtime.session_factory() as session, pytest.raises(InvalidInput) as refused:
        set_clinic_time_zone(session, "north", "Mars/Olympus")
    assert "Mars/Olympus" in refused.value.errors["time_zone"][0]


def test_the_json_api_keeps_a_senders_flag_verbatim(client: FlaskClient, tokens: Tokens) -> None:
    body = sample_panel()
    body["results"][0]["sender_flag"] = "LL"
    response = client.post("/api/v1/panels", json=body, headers=auth(tokens.clinic))
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["results"][0]["sender_flag"] == "LL"
    assert response.get_json()["results"][1]["sender_flag"] is None
    # the flag is content: the same accession with another flag conflicts
    body["results"][0]["sender_flag"] = "L"
    assert client.post("/api/v1/panels", json=body, headers=auth(tokens.clinic)).status_code == 409


@pytest.mark.postgres
def test_on_postgresql_the_one_statement_insert_stores_the_source_and_the_flags(
    tmp_path: Path,
) -> None:
    """The PostgreSQL write (one statement of CTEs) carries the new columns too."""
    with postgres_clinic_app(tmp_path, "north") as (runtime, client, token):
        clinic = _clinic(runtime)
        submitted = submit_translated(
            runtime.engine, _actor(clinic), clinic, _translated(), _ruleset(runtime), NOW
        )
        with runtime.session_factory() as session:
            revision = session.scalars(
                select(PanelRevision).where(PanelRevision.panel_id == submitted.panel_id)
            ).one()
            assert (revision.source_format, revision.source_document) == (
                "hl7v2",
                "MSH|^~\\&|...",
            )
            assert revision.not_interpreted is not None
            assert revision.not_interpreted[0]["code"] == "2593-2"
        shown = client.get(f"/api/v1/panels/{submitted.panel_id}", headers=auth(token))
        assert [r["sender_flag"] for r in shown.get_json()["results"]] == ["L", None]
